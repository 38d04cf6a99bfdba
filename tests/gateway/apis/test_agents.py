"""Agents as they really are: the bodies Claude Code 2.1.332 and Codex 0.171.0 send (recorded
once against a fake upstream, kept in `fixtures/agents/`), through the real app: passed through
whole, one conversation per agent session, and routed on the user's own words."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from classifier.settings import SettingsError
from gateway.apis import AnthropicMessages, ChatCompletions, Responses
from gateway.apis.anthropic_messages import metadata_session
from gateway.app import create_app
from gateway.routing.conversations import Pin, identify, keep
from gateway.routing.decider import Decision
from gateway.routing.human_text import choose, strip_wrappers
from gateway.settings.load import load_settings
from gateway.settings.routing import SKIP_TAGS, parse_tags
from tests.gateway.fake_upstream import FakeUpstream
from tests.gateway.scripted import ScriptedClassifier
from tests.servers import serve, wait_for

FIXTURES = Path(__file__).parent / "fixtures" / "agents"
CLAUDE_PROMPT = "Please read the file. READFILE:/tmp/ar/chome.tool_router_sj/proj/data.txt"
CODEX_PROMPT = "Show the file. RUNCMD:cat data.txt"
Gateway = Callable[..., AbstractContextManager[str]]


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def headers_of(agent: str) -> dict[str, str]:
    recorded: dict[str, str] = fixture("headers.json")[agent]["headers"]
    return {k.lower(): v for k, v in recorded.items() if k.lower() not in ("accept-encoding",)}


def parsed(provider: Any, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return provider.parse(json.dumps(body).encode(), headers or {}, max_messages=2048)


# --- the text choice, on the real bodies ------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "name", "text", "source"),
    [
        (AnthropicMessages(), "claude_first.json", CLAUDE_PROMPT, "user_text"),
        (AnthropicMessages(), "claude_tool_result.json", CLAUDE_PROMPT, "previous_turn"),
        (Responses(), "codex_first.json", CODEX_PROMPT, "user_text"),
        (Responses(), "codex_tool_output.json", CODEX_PROMPT, "previous_turn"),
    ],
)
def test_the_users_words_are_chosen_from_what_agents_send(
    provider: Any, name: str, text: str, source: str
) -> None:
    call = parsed(provider, fixture(name))
    chosen = choose(call.user_texts)
    assert (chosen.text, chosen.source) == (text, source)
    # What was left out really is the agent's: its wrappers around the user's words.
    whole = "\n".join(call.user_texts)
    assert len(whole) > 5 * len(text)


@pytest.mark.parametrize(
    ("texts", "text", "source"),
    [
        (("<system-reminder>ctx</system-reminder>\nfix the bug",), "fix the bug", "user_text"),
        (("first ask", "<system-reminder>only</system-reminder>"), "first ask", "previous_turn"),
        (("first ask", ""), "first ask", "previous_turn"),
        (("<environment_context>x</environment_context>",), "<environment_context>x", "fallback"),
        (("", ""), "", "none"),
        (("<system-reminder>unclosed … fix it",), "<system-reminder>unclosed … fix it", "fallback"),
        (("a <turn_aborted a='1'>x</turn_aborted> b",), "a  b", "user_text"),
    ],
)
def test_choose(texts: tuple[str, ...], text: str, source: str) -> None:
    chosen = choose(texts)
    assert chosen.source == source
    assert chosen.text.startswith(text[:20])


def test_codex_agents_md_heading_is_a_wrapper_too() -> None:
    item = "# AGENTS.md instructions for /p\n\n<INSTRUCTIONS>\nbe terse\n</INSTRUCTIONS>"
    assert strip_wrappers(item) == ""
    assert strip_wrappers(item, ("system-reminder",)).startswith("# AGENTS.md")


def test_skip_tags_are_configurable(make_settings: Callable[..., Any]) -> None:
    assert parse_tags("<system-reminder>, my_wrapper ,") == ("system-reminder", "my_wrapper")
    assert make_settings().classify_skip_tags == SKIP_TAGS
    assert make_settings(ROUTELLM_CLASSIFY_SKIP_TAGS="").classify_skip_tags == ()
    with pytest.raises(SettingsError, match="ROUTELLM_CLASSIFY_SKIP_TAGS"):
        make_settings(ROUTELLM_CLASSIFY_SKIP_TAGS="not a tag")


# --- identity -------------------------------------------------------------------------------


def test_claude_codes_session_is_its_conversation_on_every_turn() -> None:
    first = parsed(AnthropicMessages(), fixture("claude_first.json"))
    tool = parsed(AnthropicMessages(), fixture("claude_tool_result.json"))
    assert first.session is not None
    assert first.session.durable
    a, b = identify(None, "k", first), identify(None, "k", tool)
    assert a.id == b.id
    assert not a.fresh  # a session always continues, even on its first request
    other = copy.deepcopy(fixture("claude_first.json"))
    other["metadata"]["user_id"] = json.dumps({"session_id": "another"})
    assert identify(None, "k", parsed(AnthropicMessages(), other)).id != a.id


@pytest.mark.parametrize(
    ("user_id", "value", "durable"),
    [
        ('{"device_id": "d", "session_id": "s1"}', "session:s1", True),
        ("user_ab12_account_x_session_0f-9a", "session:0f-9a", True),
        ("alice", "user:alice", False),
    ],
)
def test_metadata_user_id(user_id: str, value: str, durable: bool) -> None:
    session = metadata_session({"user_id": user_id})
    assert session is not None
    assert (session.value, session.durable) == (value, durable)
    assert metadata_session({}) is None


def test_codexs_session_header_and_prompt_cache_key_name_its_conversation() -> None:
    headers = headers_of("codex")
    first = parsed(Responses(), fixture("codex_first.json"), headers)
    tool = parsed(Responses(), fixture("codex_tool_output.json"), headers)
    assert identify(None, "k", first).id == identify(None, "k", tool).id
    bare = parsed(Responses(), fixture("codex_first.json"))  # prompt_cache_key alone
    assert bare.session is not None
    assert bare.session.value.startswith("prompt_cache_key:")


def test_openai_user_ids_start_afresh_without_history() -> None:
    body = {"model": "router", "user": "u1", "messages": [{"role": "user", "content": "hi"}]}
    call = parsed(ChatCompletions(), body)
    assert identify(None, "k", call).fresh
    body["safety_identifier"], body["user"] = "u2", None
    assert parsed(ChatCompletions(), body).session.value == "user:u2"


def test_markup_never_changes_a_derived_id() -> None:
    body = fixture("claude_tool_result.json")
    del body["metadata"]
    moved = copy.deepcopy(body)
    for message in moved["messages"]:
        if isinstance(message["content"], list):
            for block in message["content"]:
                block.pop("cache_control", None)
    moved["messages"][0]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    a = identify(None, "k", parsed(AnthropicMessages(), body))
    b = identify(None, "k", parsed(AnthropicMessages(), moved))
    assert a.id == b.id
    moved["messages"][0]["content"][-1]["text"] = "another question"
    assert identify(None, "k", parsed(AnthropicMessages(), moved)).id != a.id


# --- through the app ------------------------------------------------------------------------


@pytest.fixture
def agents(tmp_path: Path, upstream: tuple[FakeUpstream, str]) -> Gateway:
    """A gateway whose `router` chooses between two Anthropic models and `codex-router` between
    two OpenAI ones, with a classifier answering the `p=` written in each text."""
    _, url = upstream

    @contextmanager
    def run(**env: str) -> Iterator[str]:
        doc = {
            "upstreams": {
                "claude": {"base_url": f"{url}/v1", "api_key": "up", "kind": "anthropic"},
                "openai": {"base_url": f"{url}/v1", "api_key": "up"},
            },
            "models": {
                "claude-strong": {"upstream": "claude", "model": "ok:claude-strong"},
                "claude-weak": {"upstream": "claude", "model": "ok:claude-weak"},
                "gpt-strong": {"upstream": "openai", "model": "ok:gpt-strong"},
                "gpt-weak": {"upstream": "openai", "model": "ok:gpt-weak"},
            },
            "routing": {"strong": "claude-strong", "weak": "claude-weak", "threshold": 0.5},
            "routers": {"codex-router": {"strong": "gpt-strong", "weak": "gpt-weak"}},
        }
        path = tmp_path / "agents.yaml"
        path.write_text(yaml.safe_dump(doc))
        app = create_app(load_settings(env, str(path)), classifier=ScriptedClassifier())
        with serve(app) as base:
            yield base

    return run


def rows_of(url: str, count: int) -> list[dict[str, Any]]:
    """The ledger's newest rows, once `count` of them are written."""

    def data() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = httpx.get(f"{url}/v1/decisions").json()["data"]
        return rows

    assert wait_for(lambda: len(data()) >= count, seconds=5.0)
    return data()


def claude_body(name: str, prompt: str) -> dict[str, Any]:
    """A recorded Claude Code body whose user words are `prompt`, with a `p=` in its wrapper
    too, so a decision on the wrapper would differ."""
    body = fixture(name)
    blocks = body["messages"][0]["content"]
    blocks[0]["text"] = blocks[0]["text"].replace("<system-reminder>", "<system-reminder>p=0.1 ")
    blocks[-1]["text"] = prompt
    body["model"] = "router"
    body["stream"] = False
    return body


def test_claude_code_passes_through_whole_and_routes_on_the_prompt(
    agents: Gateway, upstream: tuple[FakeUpstream, str]
) -> None:
    fake, _ = upstream
    prompt = "p=0.83 " + CLAUDE_PROMPT
    headers = headers_of("claude") | {"x-api-key": "client"}
    with agents() as url:
        route = httpx.post(
            f"{url}/v1/route",
            json={"model": "router", "messages": [{"role": "user", "content": prompt}]},
        ).json()
        sent = claude_body("claude_first.json", prompt)
        first = httpx.post(f"{url}/v1/messages?beta=true", json=sent, headers=headers)
        tool = httpx.post(
            f"{url}/v1/messages?beta=true",
            json=claude_body("claude_tool_result.json", prompt),
            headers=headers,
        )
        rows = rows_of(url, 2)
    assert first.status_code == 200, first.text
    assert float(first.headers["x-routellm-score"]) == pytest.approx(route["score"])
    assert first.headers["x-routellm-model"] == "claude-strong"
    seen = fake.history[-2]
    assert seen.query == "beta=true"
    assert seen.headers["anthropic-beta"] == headers["anthropic-beta"]
    assert seen.headers["anthropic-dangerous-direct-browser-access"] == "true"
    assert seen.headers["x-api-key"] == "up"  # the client's key never goes upstream
    assert seen.body["messages"] == sent["messages"]  # the mid-conversation system turn too
    assert {k: v for k, v in seen.body.items() if k != "model"} == {
        k: v for k, v in sent.items() if k != "model"
    }
    # The tool turn: one conversation, the same model, not classified again.
    assert tool.status_code == 200, tool.text
    assert tool.headers["x-routellm-conversation"] == first.headers["x-routellm-conversation"]
    assert tool.headers["x-routellm-model"] == "claude-strong"
    assert tool.headers["x-routellm-reason"] == "pinned"
    by_id = {row["id"]: row for row in rows}
    first_row = by_id[first.headers["x-routellm-request-id"]]
    tool_row = by_id[tool.headers["x-routellm-request-id"]]
    assert (first_row["classified_from"], first_row["classified_chars"]) == (
        "user_text",
        len(prompt),
    )
    assert tool_row["classified_from"] == "previous_turn"
    assert "prompt" not in first_row


def test_codex_tool_turn_keeps_its_model_and_headers_go_upstream(
    agents: Gateway, upstream: tuple[FakeUpstream, str]
) -> None:
    fake, _ = upstream
    headers = headers_of("codex") | {"authorization": "Bearer client"}
    bodies = []
    for name in ("codex_first.json", "codex_tool_output.json"):
        body = fixture(name)
        body["model"], body["stream"] = "codex-router", False
        last_user = [i for i in body["input"] if i.get("role") == "user"][-1]
        last_user["content"][0]["text"] = "p=0.2 " + CODEX_PROMPT
        bodies.append(body)
    with agents() as url:
        first, tool = (httpx.post(f"{url}/v1/responses", json=b, headers=headers) for b in bodies)
        assert first.status_code == tool.status_code == 200, first.text
    assert first.headers["x-routellm-model"] == tool.headers["x-routellm-model"] == "gpt-weak"
    assert tool.headers["x-routellm-reason"] == "pinned"
    assert tool.headers["x-routellm-conversation"] == first.headers["x-routellm-conversation"]
    seen = fake.history[-1]
    for name in ("session-id", "thread-id", "originator", "x-codex-turn-metadata"):
        assert seen.headers[name] == headers[name]
    assert seen.headers["authorization"] == "Bearer up"
    assert seen.body["input"] == bodies[1]["input"]


def test_an_upstreams_refusal_of_a_role_reaches_the_client_in_its_words(
    agents: Gateway,
) -> None:
    body = {
        "model": "claude-strong",
        "max_tokens": 8,
        "messages": [{"role": "wizard", "content": "hi"}, {"role": "user", "content": 5}],
    }
    with agents() as url:
        response = httpx.post(f"{url}/v1/messages", json=body)
    # The fake upstream answers anything with a message: the gateway refused nothing.
    assert response.status_code == 200, response.text


def test_upgrade_moves_an_agents_conversation_at_most_once() -> None:
    pin = Pin("small", 0.2, "router")
    turns = [("mid", 0.5), ("big", 0.9), ("big", 0.95)]
    models = []
    for model, p in turns:
        scores = {"LABEL_0": p, "LABEL_1": 1 - p, "LABEL_2": 0.0}
        decided, new_pin = keep("upgrade", pin, Decision(model, "tier", "router", scores=scores))
        pin = new_pin or pin
        models.append(decided.model)
    assert models == ["mid", "mid", "mid"]  # one switch, then the conversation holds
    assert pin.switches == 1
    twice = keep(
        "upgrade",
        Pin("mid", 0.5, "router", switches=1),
        Decision("big", "tier", "router", scores={"LABEL_0": 0.9}),
        max_switches=2,
    )
    assert twice[0].model == "big"
