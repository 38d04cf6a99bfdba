"""Which words of a request the router classifies: the latest turn a person wrote.

Agents wrap their own text around the user's: Claude Code puts `<system-reminder>` blocks in the
user message before the prompt, Codex sends its environment and instructions as user items. The
router reads 512 tokens, so classifying that boilerplate would decide on the agent, not on the
question. Each API's parser lists the user turns' texts, oldest first, with '' for a tool result
(`Call.user_texts`); `choose` strips the wrapper blocks and picks:

- `user_text`: the newest turn's own words;
- `previous_turn`: the newest turn holds none (a tool result, or wrappers only): the agent is in
  a tool loop, so the words of the human turn it serves are used, and a conversation keeps the
  model it chose for that turn;
- `fallback`: no turn holds words outside the wrappers: the newest text is classified whole;
- `none`: nothing to classify (the router's fallback model answers).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from gateway.settings.routing import SKIP_TAGS

TEXT_PARTS = frozenset({"text", "input_text"})
"""Content parts that carry words (Chat Completions', Anthropic's and the Responses API's)."""
TOOL_RESULTS = frozenset({"tool", "function"})
"""Chat Completions roles that carry a tool's answer: a turn of the agent's loop."""

TextSource = Literal["user_text", "previous_turn", "fallback", "none"]


@dataclass(frozen=True, slots=True)
class ChosenText:
    """The text classified for one request, and where it came from (ledger: `classified_from`)."""

    text: str
    source: TextSource


@lru_cache(maxsize=16)
def _wrappers(tags: tuple[str, ...]) -> re.Pattern[str] | None:
    if not tags:
        return None
    names = "|".join(re.escape(tag) for tag in tags)
    return re.compile(rf"<({names})(?:\s[^>]*)?>.*?(?:</\1\s*>|\Z)", re.DOTALL)


AGENTS_HEADING = re.compile(r"^# AGENTS\.md instructions for [^\n]*$", re.MULTILINE)
"""The line Codex puts before AGENTS.md's `<INSTRUCTIONS>` block."""


def strip_wrappers(text: str, tags: tuple[str, ...] = SKIP_TAGS) -> str:
    """`text` without the blocks of `tags` (an unclosed block runs to the end), and without the
    heading Codex gives AGENTS.md when `INSTRUCTIONS` is among them."""
    pattern = _wrappers(tags)
    if pattern is None:
        return text.strip()
    text = pattern.sub("", text)
    if "INSTRUCTIONS" in tags:
        text = AGENTS_HEADING.sub("", text)
    return text.strip()


def choose(user_texts: Sequence[str], tags: tuple[str, ...] = SKIP_TAGS) -> ChosenText:
    """The text to classify from the user turns' texts, oldest first ('' for a tool result)."""
    for age, text in enumerate(reversed(user_texts)):
        words = strip_wrappers(text, tags)
        if words:
            return ChosenText(words, "user_text" if age == 0 else "previous_turn")
    for text in reversed(user_texts):
        if text.strip():
            return ChosenText(text.strip(), "fallback")
    return ChosenText("", "none")


def content_text(content: Any) -> str:
    """A message content's words: the string, or its text parts joined ('' for anything else)."""
    if isinstance(content, str):
        return content.strip()
    if not isinstance(content, list):
        return ""
    parts = [
        part["text"]
        for part in content
        if isinstance(part, dict)
        and part.get("type") in TEXT_PARTS
        and isinstance(part.get("text"), str)
    ]
    return "\n".join(parts).strip()


def user_texts(messages: Sequence[Any]) -> tuple[str, ...]:
    """The user turns of Chat Completions or Anthropic `messages`, oldest first: each user
    message's text parts ('' when it holds only tool results or images), and '' for each tool
    message. Other roles (assistant, system, any role the gateway does not know) are skipped."""
    texts: list[str] = []
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        role = message.get("role")
        if role == "user":
            texts.append(content_text(message.get("content")))
        elif isinstance(role, str) and role in TOOL_RESULTS:
            texts.append("")
    return tuple(texts)


def text_of(messages: Sequence[Any], tags: tuple[str, ...] = SKIP_TAGS) -> str:
    """The text classified for a chat's `messages` (what `calibrate` and `evaluate` read)."""
    return choose(user_texts(messages), tags).text
