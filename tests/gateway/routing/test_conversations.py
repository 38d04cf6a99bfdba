"""Conversation-aware routing through the real app: identity, the three policies, which text
is classified, tiers and named routers (a scripted classifier decides per text)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from classifier.settings import SettingsError
from gateway.app import create_app
from gateway.routing.conversations import Pin, keep
from gateway.routing.decider import Decision
from gateway.routing.human_text import text_of
from gateway.routing.state import MemoryStore
from gateway.settings.load import Settings, load_settings
from tests.gateway.fake_upstream import FakeUpstream
from tests.gateway.scripted import ScriptedClassifier, scripted_scores
from tests.servers import serve

Messages = list[dict[str, Any]]
Gateway = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def convo(make_settings: Callable[..., Settings]) -> Gateway:
    """`with convo(ROUTELLM_CONVERSATION_POLICY="sticky") as url:` a gateway under uvicorn
    whose classifier answers the `p=` written in each text."""

    @contextmanager
    def run(**env: str) -> Iterator[str]:
        with serve(create_app(make_settings(**env), classifier=ScriptedClassifier())) as url:
            yield url

    return run


def ask(url: str, messages: Messages, key: str = "k", **headers: str) -> dict[str, str]:
    """One chat completion through the official client; the response headers."""
    with openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=headers.pop("model", "router"),
            messages=messages,
            extra_headers=headers,  # type: ignore[arg-type]
        )
        assert raw.parse().choices[0].message.content
    return dict(raw.headers)


def chat(turns: list[str], system: str = "You help.") -> Iterator[Messages]:
    """The requests of one chat, each resending the history, turn by turn."""
    messages: Messages = [{"role": "system", "content": system}]
    for turn in turns:
        messages = [*messages, {"role": "user", "content": turn}]
        yield messages
        messages = [*messages, {"role": "assistant", "content": "an answer"}]


FIVE_TURNS = [
    "p=0.9 prove it",
    "p=0.8 and then?",
    "p=0.1 thanks, in Python?",
    "p=0.7 why",
    "p=0.95 x",
]


@pytest.mark.parametrize(
    ("policy", "models", "reasons"),
    [
        ("upgrade", ["strong"] * 5, ["strong", "pinned", "pinned", "pinned", "strong"]),
        ("sticky", ["strong"] * 5, ["strong", "pinned", "pinned", "pinned", "pinned"]),
        (
            "per_turn",
            ["strong", "strong", "weak", "strong", "strong"],
            ["strong", "strong", "weak", "strong", "strong"],
        ),
    ],
)
def test_an_easy_third_turn_keeps_the_strong_model_unless_per_turn(
    convo: Gateway, policy: str, models: list[str], reasons: list[str]
) -> None:
    with convo(ROUTELLM_CONVERSATION_POLICY=policy) as url:
        answers = [ask(url, messages) for messages in chat(FIVE_TURNS)]
    assert [a["x-routellm-model"] for a in answers] == models
    assert [a["x-routellm-reason"] for a in answers] == reasons
    # A kept decision still reports the new turn's own score.
    assert [float(a["x-routellm-score"]) for a in answers] == [0.9, 0.8, 0.1, 0.7, 0.95]
    ids = {a["x-routellm-conversation"] for a in answers}
    assert len(ids) == 1
    assert ids.pop().startswith("c-")


def test_upgrade_climbs_but_never_falls_back(convo: Gateway) -> None:
    with convo() as url:
        answers = [ask(url, m) for m in chat(["p=0.2 hi", "p=0.6 harder", "p=0.3 ok", "p=0.1"])]
    assert [a["x-routellm-model"] for a in answers] == ["weak", "strong", "strong", "strong"]
    assert [a["x-routellm-reason"] for a in answers] == ["weak", "strong", "pinned", "pinned"]


def test_a_derived_id_is_stable_per_chat_and_differs_between_chats(convo: Gateway) -> None:
    with convo() as url:
        first = [ask(url, m)["x-routellm-conversation"] for m in chat(["p=0.2 a", "p=0.9 b"])]
        other_user = ask(url, next(chat(["p=0.2 another opening"])))
        other_system = ask(url, next(chat(["p=0.2 a"], system="You are terse.")))
    assert first[0] == first[1]
    assert other_user["x-routellm-conversation"] != first[0]
    assert other_system["x-routellm-conversation"] != first[0]


def test_a_new_chat_with_the_same_opening_starts_afresh(convo: Gateway) -> None:
    with convo() as url:
        climbed = [ask(url, m) for m in chat(["p=0.2 same words", "p=0.9 hard"])]
        again = ask(url, next(chat(["p=0.2 same words"])))
    assert climbed[1]["x-routellm-model"] == "strong"
    assert again["x-routellm-conversation"] == climbed[0]["x-routellm-conversation"]
    assert (again["x-routellm-model"], again["x-routellm-reason"]) == ("weak", "weak")


def test_an_explicit_id_always_continues(convo: Gateway) -> None:
    with convo() as url:
        ask(url, [{"role": "user", "content": "p=0.9 hard"}], **{"x-routellm-conversation": "t-1"})
        later = ask(
            url, [{"role": "user", "content": "p=0.1 easy"}], **{"x-routellm-conversation": "t-1"}
        )
    assert (later["x-routellm-model"], later["x-routellm-reason"]) == ("strong", "pinned")
    assert later["x-routellm-conversation"] == "t-1"


def test_clients_with_different_keys_never_share_state(convo: Gateway) -> None:
    explicit = {"x-routellm-conversation": "shared-name"}
    with convo(ROUTELLM_API_KEYS="key-a,key-b") as url:
        turns = list(chat(["p=0.2 hi", "p=0.9 hard", "p=0.3 easy"]))
        a = [ask(url, m, key="key-a") for m in turns[:2]]
        b = ask(url, turns[2], key="key-b")  # key-a's chat, replayed under key-b
        ask(url, [{"role": "user", "content": "p=0.9"}], key="key-a", **explicit)
        b_explicit = ask(url, [{"role": "user", "content": "p=0.1"}], key="key-b", **explicit)
    assert a[1]["x-routellm-model"] == "strong"
    assert b["x-routellm-conversation"] != a[0]["x-routellm-conversation"]
    assert (b["x-routellm-model"], b["x-routellm-reason"]) == ("weak", "weak")
    assert (b_explicit["x-routellm-model"], b_explicit["x-routellm-reason"]) == ("weak", "weak")


def test_a_model_named_directly_is_never_pinned(convo: Gateway) -> None:
    explicit = {"x-routellm-conversation": "direct-1"}
    with convo() as url:
        ask(url, [{"role": "user", "content": "p=0.9"}], **explicit)
        direct = ask(url, [{"role": "user", "content": "p=0.9"}], model="weak", **explicit)
    assert (direct["x-routellm-model"], direct["x-routellm-reason"]) == ("weak", "direct")


def test_a_bad_conversation_header_is_a_400_in_openai_shape(convo: Gateway) -> None:
    with convo() as url:
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "router", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-routellm-conversation": "has spaces in it"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x-routellm-conversation"


def test_errors_carry_the_conversation(convo: Gateway) -> None:
    with convo() as url:
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "status-400", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-routellm-conversation": "err-1"},
        )
    assert response.status_code == 400
    assert response.headers["x-routellm-conversation"] == "err-1"


AGENT: Messages = [
    {"role": "system", "content": "You are an agent."},
    {"role": "user", "content": "p=0.9 refactor the parser"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "1", "type": "function", "function": {"name": "read", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "1", "content": "p=0.1 file contents"},
    {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "1", "content": "p=0.1 more"}],
    },
    {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}],
    },
    {"role": "user", "content": ""},
]


def test_tool_and_image_messages_are_not_classified(convo: Gateway) -> None:
    with convo() as url:
        decision = httpx.post(f"{url}/v1/route", json={"model": "router", "messages": AGENT}).json()
    assert decision["score"] == 0.9
    assert decision["model"] == "strong"


@pytest.mark.parametrize(
    ("messages", "text"),
    [
        (AGENT, "p=0.9 refactor the parser"),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "look"}, {"type": "image_url"}],
                }
            ],
            "look",
        ),
        (
            [
                {"role": "user", "content": "a"},
                {"role": "user", "content": [{"type": "image_url"}]},
            ],
            "a",
        ),
        ([{"role": "tool", "content": "x"}], ""),
    ],
)
def test_text_of(messages: Messages, text: str) -> None:
    assert text_of(messages) == text


def decision(model: str, p: float | None, reason: str = "strong") -> Decision:
    scores = None if p is None else scripted_scores(f"p={p}").as_dict()
    return Decision(model, reason, "router", scores=scores)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "turn", "kept"),
    [
        ("upgrade", decision("weak", 0.3, "weak"), ("strong", "pinned")),
        ("upgrade", decision("strong", 0.7), ("strong", "strong")),
        ("upgrade", decision("weak", None, "classifier_error"), ("strong", "pinned")),
        ("sticky", decision("weak", 0.9, "weak"), ("strong", "pinned")),
        ("per_turn", decision("weak", 0.1, "weak"), ("weak", "weak")),
    ],
)
def test_the_policy_rule(policy: Any, turn: Decision, kept: tuple[str, str]) -> None:
    result, _ = keep(policy, Pin("strong", 0.6, "router"), turn)
    assert (result.model, result.reason) == kept


def test_a_pin_of_another_router_is_not_kept() -> None:
    result, pin = keep("sticky", Pin("strong", 0.9, "code-router"), decision("weak", 0.1, "weak"))
    assert (result.model, pin) == ("weak", Pin("weak", 0.1, "router"))


async def test_the_memory_store_is_bounded_and_expires() -> None:
    store = MemoryStore(max_entries=2)
    for key in ("a", "b", "c"):
        await store.put("ns", key, {"v": key}, ttl=60)
    assert len(store) == 2
    assert await store.get("ns", "a") is None
    assert await store.get("ns", "c") == {"v": "c"}
    await store.put("ns", "gone", 1, ttl=0)
    assert await store.get("ns", "gone") is None


# Tiers and named routers -------------------------------------------------------------------

TIERS = json.dumps(
    [
        {"model": "strong", "min_win_rate": 0.7},
        {"model": "middle", "min_win_rate": 0.3},
        {"model": "weak"},
    ]
)


@pytest.mark.parametrize(
    ("p", "model", "threshold"),
    [(0.95, "strong", 0.7), (0.7, "strong", 0.7), (0.5, "middle", 0.3), (0.1, "weak", None)],
)
def test_three_tiers_pick_the_first_tier_whose_min_win_rate_is_reached(
    convo: Gateway, p: float, model: str, threshold: float | None
) -> None:
    with convo(ROUTELLM_TIERS=TIERS, ROUTELLM_CONVERSATION_POLICY="per_turn") as url:
        routed = httpx.post(
            f"{url}/v1/route",
            json={"model": "router", "messages": [{"role": "user", "content": f"p={p}"}]},
        ).json()
        answered = ask(url, [{"role": "user", "content": f"p={p}"}])
    assert (routed["model"], routed["reason"], routed["threshold"]) == (model, "tier", threshold)
    assert (answered["x-routellm-model"], answered["x-routellm-reason"]) == (model, "tier")


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        (
            TIERS.replace("0.7", "x").replace("0.3", "0.7").replace("x", "0.3"),
            "is not below the tier before it",
        ),
        (
            '[{"model": "strong", "min_win_rate": 0.7}, {"model": "weak", "min_win_rate": 0.2}]',
            "has no min_win_rate",
        ),
        ('[{"model": "strong"}]', "at least two tiers"),
        ('[{"model": "strong", "min_win_rate": 1.5}, {"model": "weak"}]', "between 0 and 1"),
        (
            '[{"model": "nowhere", "min_win_rate": 0.5}, {"model": "weak"}]',
            "'nowhere', which no upstream serves",
        ),
        ("[oops", "not valid JSON"),
    ],
)
def test_tiers_are_validated_at_start_up(
    make_settings: Callable[..., Settings], tiers: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        make_settings(ROUTELLM_TIERS=tiers)


@pytest.fixture
def routers_config(tmp_path: Path, upstream: tuple[FakeUpstream, str]) -> Path:
    _, url = upstream
    doc = {
        "upstreams": {"fake": {"base_url": f"{url}/v1"}},
        "models": {
            name: {"upstream": "fake", "model": f"ok:{name}"}
            for name in ("strong", "weak", "middle", "tiny")
        }
        | {"failing": {"upstream": "fake", "model": "status-503"}},
        "routing": {"strong": "strong", "weak": "weak"},
        "routers": {
            "code-router": {
                "strong": "failing",
                "weak": "tiny",
                "threshold": 0.4,
                "fallback": "middle",
            },
            "cheap-router": {
                "tiers": [{"model": "middle", "min_win_rate": 0.8}, {"model": "tiny"}]
            },
        },
    }
    path = tmp_path / "routers.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_named_routers_are_listed_explained_and_fall_back_to_their_own_model(
    routers_config: Path,
) -> None:
    settings = load_settings({"ROUTELLM_CONVERSATION_POLICY": "per_turn"}, str(routers_config))
    with serve(create_app(settings, classifier=ScriptedClassifier())) as url:
        listed = {m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]}

        def route(model: str, p: float) -> dict[str, Any]:
            body = {"model": model, "messages": [{"role": "user", "content": f"p={p}"}]}
            return httpx.post(f"{url}/v1/route", json=body).json()  # type: ignore[no-any-return]

        code_easy, cheap_hard, cheap_easy = (
            route("code-router", 0.3),
            route("cheap-router", 0.9),
            route("cheap-router", 0.5),
        )
        failed_over = ask(url, [{"role": "user", "content": "p=0.9"}], model="code-router")
    assert {"router", "code-router", "cheap-router"} <= listed
    assert (code_easy["model"], code_easy["reason"], code_easy["threshold"]) == (
        "tiny",
        "weak",
        0.4,
    )
    assert (cheap_hard["model"], cheap_hard["reason"]) == ("middle", "tier")
    assert (cheap_easy["model"], cheap_easy["reason"]) == ("tiny", "tier")
    # `failing` answers 503: the request moves to code-router's fallback, not the gateway's.
    assert (failed_over["x-routellm-model"], failed_over["x-routellm-reason"]) == (
        "middle",
        "upstream_fallback",
    )


@pytest.mark.parametrize(
    ("routers", "message"),
    [
        ({"r": {"strong": "strong"}}, "needs both `strong` and `weak`"),
        (
            {
                "r": {
                    "strong": "strong",
                    "weak": "weak",
                    "tiers": [{"model": "strong", "min_win_rate": 0.5}, {"model": "weak"}],
                }
            },
            "exactly one rule",
        ),
        ({"r": {"mapping": {"LABEL_0": "strong"}}}, "name the `fallback`"),
        ({"r": {"strong": "x", "weak": "weak"}}, "routers.r .*names 'x', which no upstream serves"),
        ({"r": {"strong": "strong", "weak": "weak", "colour": 1}}, "unknown key 'colour'"),
        ({"router": {"strong": "strong", "weak": "weak"}}, "reserved"),
        ({"strong": {"strong": "strong", "weak": "weak"}}, "'strong' is reserved"),
    ],
)
def test_named_routers_are_validated_at_start_up(
    tmp_path: Path, routers: dict[str, Any], message: str
) -> None:
    doc = {
        "upstreams": {"u": {"base_url": "http://127.0.0.1:9/v1"}},
        "models": {"strong": {"upstream": "u"}, "weak": {"upstream": "u"}},
        "routing": {"strong": "strong", "weak": "weak"},
        "routers": routers,
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SettingsError, match=message):
        load_settings({}, str(path))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ROUTELLM_CONVERSATION_POLICY": "forever"}, "use per_turn, sticky or upgrade"),
        ({"ROUTELLM_CONVERSATION_TTL": "0"}, "ROUTELLM_CONVERSATION_TTL"),
        ({"ROUTELLM_REDIS_URL": "127.0.0.1:6379"}, "redis:// or rediss://"),
        ({"ROUTELLM_TIERS": TIERS, "ROUTELLM_MAPPING": '{"LABEL_0": "strong"}'}, "keep only one"),
    ],
)
def test_conversation_settings_are_validated(
    make_settings: Callable[..., Settings], env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        make_settings(**env)


def test_calibrate_shares_prints_tier_thresholds_that_hit_the_shares(tmp_path: Path) -> None:
    import subprocess

    from classifier.service import create_app as classifier_app

    prompts = tmp_path / "prompts.txt"
    rates = [round(0.005 + i / 200, 3) for i in range(200)]
    prompts.write_text("".join(f"question {i} p={p}\n" for i, p in enumerate(rates)))
    with serve(classifier_app(classifier=ScriptedClassifier())) as bert:
        env = {"PATH": "/usr/bin:/bin", "ROUTELLM_BERT_URL": f"{bert}/predict"}
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway",
                "calibrate",
                "--prompts",
                str(prompts),
                "--shares",
                "0.2,0.5,0.3",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    first, second = (float(line) for line in result.stdout.split())
    shares = [
        sum(p >= first for p in rates) / len(rates),
        sum(second <= p < first for p in rates) / len(rates),
        sum(p < second for p in rates) / len(rates),
    ]
    assert shares == pytest.approx([0.2, 0.5, 0.3], abs=0.01)
    assert "ROUTELLM_TIERS" in result.stderr
