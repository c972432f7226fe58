"""The upstream wire formats: a Conversation written as each family's request body, and a
canonical form of such bodies, so that a translated request can be compared with what the
family's own client would have sent.

The canonical form erases only what the API itself treats as the same request: `max_tokens` for
`max_completion_tokens`, a string for a one-item list of text, `"stream": false` for no `stream`,
and tool-call arguments compared as JSON values rather than text.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Protocol

from support import ANTHROPIC_TEST_KEY, OPENAI_TEST_KEY

from ai_router.wire import bedrock_converse, gemini_generate

from .conversation import Conversation, Family, Image, Tool, Turn

Body = dict[str, Any]
GEMINI_TEST_KEY = "AIzaSy-test-gemini-conformance-0123"


class WireFormat(Protocol):
    family: Family
    path: str  # where the simulator records requests of this family
    key: str  # the router's key for this upstream (tests/support.py)

    def path_for(self, model: str, stream: bool) -> str: ...
    def request(self, conversation: Conversation, model: str, limit: int | None) -> Body: ...
    def stream_fields(self) -> Body: ...
    def canonical(self, body: Body) -> Body: ...
    def key_sent(self, headers: dict[str, str]) -> str: ...


def _joined_text(content: Any, kind: str = "text") -> Any:
    """A list of text items only -> their text; anything else unchanged."""
    if isinstance(content, list) and content and all(
        isinstance(item, dict) and set(item) == {"type", "text"} and item["type"] == kind for item in content
    ):
        return "".join(item["text"] for item in content)
    return content


class OpenAIFormat:
    family: Family = "openai"
    path = "/v1/chat/completions"
    key = OPENAI_TEST_KEY

    def path_for(self, model: str, stream: bool) -> str:
        return self.path

    def request(self, conversation: Conversation, model: str, limit: int | None) -> Body:
        roles = ["system"] + ["developer"] * len(conversation.instructions)
        messages = [{"role": role, "content": text} for role, text in zip(roles, conversation.instructions)]
        messages += [self._message(turn) for turn in conversation.turns]
        body: Body = {"model": model, "messages": messages}
        if limit is not None:
            body["max_completion_tokens"] = limit
        if conversation.stop:
            body["stop"] = list(conversation.stop)
        if conversation.tools:
            body["tools"] = [{"type": "function", "function": self._function(t)} for t in conversation.tools]
        if conversation.tool_choice:
            body["tool_choice"] = {"type": "function", "function": {"name": conversation.tool_choice}}
        if conversation.output:
            # A format without a name (an Anthropic client's) reaches OpenAI named "output".
            output = conversation.output
            spec: Body = {"name": output.name or "output", "schema": output.schema}
            if output.strict:
                spec["strict"] = True
            body["response_format"] = {"type": "json_schema", "json_schema": spec}
        if conversation.reasoning:
            body["reasoning_effort"] = conversation.reasoning.effort
        return body

    @staticmethod
    def _function(tool: Tool) -> Body:
        function: Body = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
        if tool.strict:
            function["strict"] = True
        return function

    @staticmethod
    def _message(turn: Turn) -> Body:
        if turn.role == "tool":
            return {"role": "tool", "tool_call_id": turn.call_id, "content": turn.text}
        if turn.role == "assistant":
            message: Body = {"role": "assistant", "content": turn.text or None}
            if turn.calls:
                message["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in turn.calls
                ]
            return message
        if not turn.images:
            return {"role": "user", "content": turn.text}
        parts: list[Body] = [{"type": "text", "text": turn.text}]
        parts += [{"type": "image_url", "image_url": {"url": image.url or image.data_url}} for image in turn.images]
        return {"role": "user", "content": parts}

    def stream_fields(self) -> Body:
        # The router needs the usage of an OpenAI stream to report it to any client.
        return {"stream": True, "stream_options": {"include_usage": True}}

    def canonical(self, body: Body) -> Body:
        body = copy.deepcopy(body)
        if "max_tokens" in body and "max_completion_tokens" not in body:
            body["max_completion_tokens"] = body.pop("max_tokens")
        if isinstance(body.get("stop"), str):
            body["stop"] = [body["stop"]]
        if body.get("stream") is False:
            del body["stream"]
        messages = body.get("messages", [])
        leading = 0
        while leading < len(messages) and messages[leading]["role"] in ("system", "developer"):
            leading += 1
        if leading:
            # Leading system and developer messages say what one system message joining them says.
            joined = "\n".join(_joined_text(message["content"]) for message in messages[:leading])
            messages[:leading] = [{"role": "system", "content": joined}]
        for message in messages:
            message["content"] = _joined_text(message.get("content"))
            if message.get("tool_calls") and not message["content"]:
                del message["content"]
            for call in message.get("tool_calls", []):
                call["function"]["arguments"] = json.loads(call["function"]["arguments"])
        return body

    def key_sent(self, headers: dict[str, str]) -> str:
        return headers.get("authorization", "").removeprefix("Bearer ")


def _image_source(image: Image) -> Body:
    if image.url:
        return {"type": "url", "url": image.url}
    return {"type": "base64", "media_type": image.media_type, "data": image.base64}


class AnthropicFormat:
    family: Family = "anthropic"
    path = "/v1/messages"
    key = ANTHROPIC_TEST_KEY

    def path_for(self, model: str, stream: bool) -> str:
        return self.path

    def request(self, conversation: Conversation, model: str, limit: int | None) -> Body:
        body: Body = {"model": model, "max_tokens": limit, "messages": self._messages(conversation.turns)}
        if conversation.system:
            body["system"] = conversation.system
        if conversation.stop:
            body["stop_sequences"] = list(conversation.stop)
        if conversation.tools:
            body["tools"] = [self._tool(t) for t in conversation.tools]
        if conversation.tool_choice:
            body["tool_choice"] = {"type": "tool", "name": conversation.tool_choice}
        output_config: Body = {}
        if conversation.output:
            # Anthropic's format has no name, and always holds to the schema.
            output_config["format"] = {"type": "json_schema", "schema": conversation.output.schema}
        reasoning = conversation.reasoning
        if reasoning and reasoning.budget:
            body["thinking"] = {"type": "enabled", "budget_tokens": reasoning.budget}
        elif reasoning:
            # Adaptive thinking at that effort, shown summarized (docs/TRANSLATION.md, reasoning effort).
            body["thinking"] = {"type": "adaptive", "display": "summarized"}
            output_config["effort"] = reasoning.effort
        if output_config:
            body["output_config"] = output_config
        return body

    @staticmethod
    def _tool(tool: Tool) -> Body:
        out: Body = {"name": tool.name, "description": tool.description, "input_schema": tool.parameters}
        if tool.strict:
            out["strict"] = True
        return out

    @classmethod
    def _messages(cls, turns: tuple[Turn, ...]) -> list[Body]:
        """Tool results are blocks of a user turn; consecutive ones share the turn."""
        messages: list[Body] = []
        previous = ""
        for turn in turns:
            content = cls._content(turn)
            if turn.role == previous == "tool":
                messages[-1]["content"] += content
            else:
                messages.append({"role": "user" if turn.role == "tool" else turn.role, "content": content})
            previous = turn.role
        return messages

    @staticmethod
    def _content(turn: Turn) -> str | list[Body]:
        if turn.role == "tool":
            return [{"type": "tool_result", "tool_use_id": turn.call_id, "content": turn.text}]
        if not turn.images and not turn.calls:
            return turn.text
        blocks: list[Body] = [{"type": "text", "text": turn.text}] if turn.text else []
        blocks += [{"type": "image", "source": _image_source(i)} for i in turn.images]
        blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.input} for c in turn.calls]
        return blocks

    def stream_fields(self) -> Body:
        return {"stream": True}

    def canonical(self, body: Body) -> Body:
        body = copy.deepcopy(body)
        if body.get("stream") is False:
            del body["stream"]
        if "system" in body:
            body["system"] = _joined_text(body["system"])
        for message in body.get("messages", []):
            if isinstance(message.get("content"), str):
                message["content"] = [{"type": "text", "text": message["content"]}]
            for block in message["content"]:
                if block.get("type") == "tool_result":
                    block["content"] = _joined_text(block.get("content"))
        return body

    def key_sent(self, headers: dict[str, str]) -> str:
        return headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")


class GeminiFormat:
    """What the router sends a Gemini model for a conversation: no client speaks Gemini, so this
    is the translation itself, written out from Google's generateContent reference."""

    family: Family = "gemini"
    path = "/v1beta/models/{model}:generateContent"
    key = GEMINI_TEST_KEY

    def path_for(self, model: str, stream: bool) -> str:
        return gemini_generate.path(model, stream)

    def request(self, conversation: Conversation, model: str, limit: int | None) -> Body:
        names = {call.id: call.name for turn in conversation.turns for call in turn.calls}
        contents: list[Body] = []
        for turn in conversation.turns:
            role = "model" if turn.role == "assistant" else "user"
            parts = self._parts(turn, names)
            if contents and contents[-1]["role"] == role:
                contents[-1]["parts"] += parts
            else:
                contents.append({"role": role, "parts": parts})
        body: Body = {"contents": contents}
        if conversation.system:
            body["systemInstruction"] = {"parts": [{"text": conversation.system}]}
        if conversation.tools:
            # Gemini has no strict flag: a strict tool is declared as any other (docs/TRANSLATION.md).
            body["tools"] = [{"functionDeclarations": [
                {"name": t.name, "description": t.description, "parametersJsonSchema": t.parameters}
                for t in conversation.tools
            ]}]
        if conversation.tool_choice:
            body["toolConfig"] = {"functionCallingConfig": {
                "mode": "ANY", "allowedFunctionNames": [conversation.tool_choice]}}
        config: Body = {"maxOutputTokens": limit}
        if conversation.stop:
            config["stopSequences"] = list(conversation.stop)
        if conversation.output:
            # JSON Schema as written; the format's name and strictness have no Gemini field.
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = conversation.output.schema
        if conversation.reasoning:
            config["thinkingConfig"] = self._thinking(model, conversation.reasoning.effort)
        body["generationConfig"] = config
        return body

    @staticmethod
    def _thinking(model: str, effort: str) -> Body:
        """Gemini 2.x thinks within a budget in tokens, later models at a level, both read off the
        effort; thoughts are asked for, to come back as the answer's reasoning."""
        if model.startswith("gemini-2."):
            budget = gemini_generate.THINKING_BUDGETS[effort]
            return {"thinkingBudget": budget, "includeThoughts": budget != 0}
        return {"thinkingLevel": gemini_generate.THINKING_LEVELS[effort], "includeThoughts": True}

    @staticmethod
    def _parts(turn: Turn, names: dict[str, str]) -> list[Body]:
        if turn.role == "tool":
            return [{"functionResponse": {"name": names[turn.call_id], "response": {"output": turn.text}}}]
        parts: list[Body] = [{"text": turn.text}] if turn.text else []
        parts += [{"inlineData": {"mimeType": i.media_type, "data": i.base64}} for i in turn.images]
        for call in turn.calls:
            part: Body = {"functionCall": {"name": call.name, "args": call.input}}
            # The signature Gemini gave the call travels in its id (wire/gemini_generate.py).
            signature = gemini_generate.signature_of(call.id)
            if signature is not None:
                part["thoughtSignature"] = signature
            parts.append(part)
        return parts

    def stream_fields(self) -> Body:
        return {}  # a stream is asked for by the URL

    def canonical(self, body: Body) -> Body:
        return copy.deepcopy(body)

    def key_sent(self, headers: dict[str, str]) -> str:
        return headers.get("x-goog-api-key", "")


class BedrockFormat:
    """What the router sends Bedrock's Converse for a conversation (no client speaks Converse:
    this is the translation, written out from botocore's model of ConverseRequest), to a Claude
    model. The key sent is the SigV4 signature's: its access key id, over the headers the router
    signs (the simulator recomputed the signature itself with botocore's signer, or it would
    have answered 403)."""

    family: Family = "bedrock"
    path = "/model/{modelId}/converse"
    key = bedrock_converse.SIMULATOR_ACCESS_KEY_ID
    SIGNED = "SignedHeaders=content-type;host;x-amz-date, Signature="

    def path_for(self, model: str, stream: bool) -> str:
        return bedrock_converse.path(model, stream)

    def request(self, conversation: Conversation, model: str, limit: int | None) -> Body:
        messages: list[Body] = []
        for turn in conversation.turns:
            role = "assistant" if turn.role == "assistant" else "user"
            content = self._content(turn)
            if messages and messages[-1]["role"] == role:
                messages[-1]["content"] += content
            else:
                messages.append({"role": role, "content": content})
        body: Body = {"messages": messages}
        if conversation.system:
            body["system"] = [{"text": conversation.system}]
        inference: Body = {"maxTokens": limit}
        if conversation.stop:
            inference["stopSequences"] = list(conversation.stop)
            body["additionalModelResponseFieldPaths"] = ["/stop_sequence"]  # which one, from Claude
        body["inferenceConfig"] = inference
        if conversation.tools:
            tools: Body = {"tools": [{"toolSpec": self._spec(t)} for t in conversation.tools]}
            if conversation.tool_choice:
                tools["toolChoice"] = {"tool": {"name": conversation.tool_choice}}
            body["toolConfig"] = tools
        output: Body = {}
        if conversation.output:
            schema = {"schema": conversation.output.schema, "name": conversation.output.name or "output"}
            output["textFormat"] = {"type": "json_schema", "structure": {"jsonSchema": schema}}
        if conversation.reasoning:
            # Converse's own effort; Claude 4.6's adaptive thinking asked for, to come back as
            # reasoning (a Claude before 4.6 would get a budget: tests/test_bedrock_provider.py).
            output["effort"] = bedrock_converse.EFFORTS[conversation.reasoning.effort]
            body["additionalModelRequestFields"] = {"thinking": {"type": "adaptive", "display": "summarized"}}
        if output:
            body["outputConfig"] = output
        return body

    @staticmethod
    def _spec(tool: Tool) -> Body:
        spec: Body = {"name": tool.name, "description": tool.description, "inputSchema": {"json": tool.parameters}}
        if tool.strict:
            spec["strict"] = True
        return spec

    @staticmethod
    def _content(turn: Turn) -> list[Body]:
        if turn.role == "tool":
            return [{"toolResult": {"toolUseId": turn.call_id, "content": [{"text": turn.text}]}}]
        content: list[Body] = [{"text": turn.text}] if turn.text else []
        content += [{"image": {"format": i.media_type.removeprefix("image/"), "source": {"bytes": i.base64}}}
                    for i in turn.images]
        content += [{"toolUse": {"toolUseId": c.id, "name": c.name, "input": c.input}} for c in turn.calls]
        return content

    def stream_fields(self) -> Body:
        return {}  # a stream is asked for by the URL

    def canonical(self, body: Body) -> Body:
        body = copy.deepcopy(body)
        json_schema = body.get("outputConfig", {}).get("textFormat", {}).get("structure", {}).get("jsonSchema")
        if json_schema and isinstance(json_schema["schema"], str):
            json_schema["schema"] = json.loads(json_schema["schema"])  # sent as text, compared as JSON
        return body

    def key_sent(self, headers: dict[str, str]) -> str:
        """The access key id of the signature, when it signs what the router signs, dated as
        the request's X-Amz-Date says."""
        scheme, _, rest = headers.get("authorization", "").partition(" Credential=")
        access_key, _, scope = rest.partition("/")
        date = headers.get("x-amz-date", "")
        signed = scope.startswith(f"{date[:8]}/us-east-1/bedrock/aws4_request, {self.SIGNED}")
        return access_key if scheme == "AWS4-HMAC-SHA256" and signed else ""


# Each family's format for a request translated from another family (or from gRPC).
FORMATS: dict[Family, WireFormat] = {
    "openai": OpenAIFormat(),
    "anthropic": AnthropicFormat(),
    "gemini": GeminiFormat(),
    "bedrock": BedrockFormat(),
}


class ResponsesFormat:
    """OpenAI's Responses API: the same family as Chat Completions, so relayed only to OpenAI."""

    family: Family = "openai"
    path = "/v1/responses"

    def path_for(self, model: str, stream: bool) -> str:
        return self.path
    key = OPENAI_TEST_KEY

    def request(self, conversation: Conversation, model: str, limit: int | None) -> Body:
        assert not conversation.stop, "the Responses API has no stop sequences"
        first, *more = conversation.instructions or [""]
        # The first instruction as `instructions`, the others as developer messages, as a
        # Chat Completions client sends them as system then developer messages.
        items: list[Body] = [{"role": "developer", "content": text} for text in more]
        for turn in conversation.turns[conversation.continued:]:
            items += self._items(turn)
        body: Body = {"model": model, "input": items}
        if first:
            body["instructions"] = first
        if conversation.previous_response_id:
            body["previous_response_id"] = conversation.previous_response_id
        if limit is not None:
            body["max_output_tokens"] = limit
        if conversation.tools:
            body["tools"] = [
                {"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters,
                 "strict": t.strict}  # said either way: the API's default is not the same everywhere
                for t in conversation.tools
            ]
        if conversation.tool_choice:
            body["tool_choice"] = {"type": "function", "name": conversation.tool_choice}
        if conversation.output:
            output = conversation.output
            body["text"] = {"format": {"type": "json_schema", "name": output.name or "output",
                                       "schema": output.schema, "strict": output.strict}}
        if conversation.reasoning:
            # A summary must be asked for: without one the API shows no reasoning.
            body["reasoning"] = {"effort": conversation.reasoning.effort, "summary": "auto"}
        return body

    @staticmethod
    def _items(turn: Turn) -> list[Body]:
        if turn.role == "tool":
            return [{"type": "function_call_output", "call_id": turn.call_id, "output": turn.text}]
        if turn.role == "assistant":
            items: list[Body] = [{"role": "assistant", "content": turn.text}] if turn.text else []
            items += [{"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments}
                      for c in turn.calls]
            return items
        if not turn.images:
            return [{"role": "user", "content": turn.text}]
        parts: list[Body] = [{"type": "input_text", "text": turn.text}]
        parts += [{"type": "input_image", "image_url": image.url or image.data_url, "detail": "auto"}
                  for image in turn.images]
        return [{"role": "user", "content": parts}]

    def stream_fields(self) -> Body:
        return {"stream": True}

    def canonical(self, body: Body) -> Body:
        body = copy.deepcopy(body)
        if body.get("stream") is False:
            del body["stream"]
        if isinstance(body.get("input"), str):
            body["input"] = [{"role": "user", "content": body["input"]}]
        for item in body.get("input", []):
            if "role" in item:
                item.pop("type", None)  # a message item with or without its optional type
                item["content"] = _joined_text(item["content"], "input_text")
                item["content"] = _joined_text(item["content"], "output_text")
            if item.get("type") == "function_call":
                item["arguments"] = json.loads(item["arguments"])
        return body

    def key_sent(self, headers: dict[str, str]) -> str:
        return headers.get("authorization", "").removeprefix("Bearer ")


RESPONSES = ResponsesFormat()
