"""Helpers to run the real Claude Code and Codex CLIs against a local fake upstream.

Importable helper module (contains no tests).  It installs pinned versions of
``@anthropic-ai/claude-code`` and ``@openai/codex`` with npm into a cache dir,
and builds the environment / config / argv needed to run them offline and
non-interactively against ``http://127.0.0.1:<port>``.

Verified with Node 20.20 / npm 11.19 on linux-x64, no internet:

* Claude Code 2.1.332 ships a native binary in the optional dependency
  ``@anthropic-ai/claude-code-<platform>``; its postinstall (``install.cjs``)
  only hard-links/copies that binary over ``bin/claude.exe`` and downloads
  nothing.  ``engines.node >=22`` is only an npm warning; the binary does not
  use the system Node.
* Codex 0.171.0: ``bin/codex.js`` (needs ``node`` on PATH) launches the native
  binary from ``@openai/codex-<platform>``.  No postinstall.

Pitfalls handled here:

* Both CLIs must get ``stdin=DEVNULL``: ``codex exec`` reads stdin until EOF
  ("Reading additional input from stdin..."), ``claude -p`` waits 3 s for it.
* Claude Code without ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` sends
  ``HEAD /api/hello`` to the base URL and resolves ``api.anthropic.com``.
* Codex without ``[features] plugins = false`` resolves ``github.com`` (curated
  plugin sync via git / api.github.com) at startup.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

CLAUDE_CODE_VERSION: Final = "2.1.332"
CODEX_VERSION: Final = "0.171.0"

#: API key handed to both CLIs; the fake upstream never checks it.
FAKE_API_KEY: Final = "sk-test"
#: Name of the env var Codex reads the provider key from (``env_key``).
CODEX_KEY_ENV: Final = "ROUTELLM_TEST_API_KEY"
#: Provider id used in the generated Codex ``config.toml``.
CODEX_PROVIDER: Final = "routellm"

_PASSTHROUGH_ENV: Final = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def cache_dir() -> Path:
    """Return the install prefix for the pinned CLI versions."""
    root = Path(
        os.environ.get("ROUTELLM_AGENT_CLIS_CACHE")
        or Path.home() / ".cache" / "routellm-gateway-tests" / "agent-clis"
    )
    return root / f"claude-code-{CLAUDE_CODE_VERSION}_codex-{CODEX_VERSION}"


def _works(binary: Path, expected: str) -> bool:
    """Return True when ``binary --version`` runs and mentions ``expected``."""
    if not binary.exists():
        return False
    try:
        with tempfile.TemporaryDirectory() as home:  # codex creates $HOME/.codex
            proc = subprocess.run(
                [str(binary), "--version"],
                check=False,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
                env=_base_env(Path(home)),
            )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and expected in proc.stdout


def install_clis(prefix: Path | None = None) -> Path:
    """Install the pinned CLIs with npm (idempotent) and return the bin dir.

    The returned directory holds ``claude`` and ``codex``.  Raises
    ``RuntimeError`` when npm is missing or the install does not yield
    working binaries.
    """
    prefix = prefix or cache_dir()
    bin_dir = prefix / "node_modules" / ".bin"
    claude, codex = bin_dir / "claude", bin_dir / "codex"
    if _works(claude, CLAUDE_CODE_VERSION) and _works(codex, CODEX_VERSION):
        return bin_dir
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found on PATH")
    prefix.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(prefix),
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            f"@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}",
            f"@openai/codex@{CODEX_VERSION}",
        ],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=600,
    )
    if not _works(claude, CLAUDE_CODE_VERSION):
        # npm setups that skip install scripts leave the stub in place; the
        # postinstall only links the already-downloaded native binary.
        pkg = prefix / "node_modules" / "@anthropic-ai" / "claude-code"
        subprocess.run(
            ["node", "install.cjs"],
            cwd=pkg,
            check=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
        )
    for binary, version in ((claude, CLAUDE_CODE_VERSION), (codex, CODEX_VERSION)):
        if not _works(binary, version):
            raise RuntimeError(f"{binary} --version does not report {version}")
    return bin_dir


def _base_env(home: Path) -> dict[str, str]:
    """Minimal environment: PATH etc. from the caller, a private HOME, nothing else.

    Deliberately drops any inherited ``ANTHROPIC_*``, ``OPENAI_*``,
    ``CLAUDE_*``, ``CODEX_*`` and proxy variables.
    """
    env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
    env["HOME"] = str(home)
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["NO_COLOR"] = "1"
    return env


def claude_env(base_url: str, home: Path, api_key: str = FAKE_API_KEY) -> dict[str, str]:
    """Environment for an offline, non-interactive ``claude -p`` run.

    ``base_url`` is the server root, e.g. ``http://127.0.0.1:8080`` (Claude Code
    appends ``/v1/messages?beta=true``).  ``home`` should be an empty temp dir;
    Claude Code writes ``.claude.json`` and ``.claude/`` there.
    """
    home.mkdir(parents=True, exist_ok=True)
    env = _base_env(home)
    env.update(
        {
            "ANTHROPIC_BASE_URL": base_url.rstrip("/"),
            "ANTHROPIC_API_KEY": api_key,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
        }
    )
    return env


def codex_home(
    base_url: str, home: Path, model: str, api_key: str = FAKE_API_KEY
) -> dict[str, str]:
    """Write ``$home/.codex/config.toml`` and return the env for ``codex exec``.

    ``base_url`` is the OpenAI-style base *including* ``/v1``, e.g.
    ``http://127.0.0.1:8080/v1`` (Codex appends ``/responses``).  The config
    selects a custom provider with ``wire_api = "responses"``, approval
    ``never``, no sandbox, no update check, and turns off the features that
    reach the internet (curated plugin sync, apps, analytics, feedback).
    """
    codex_dir = home / ".codex"
    codex_dir.mkdir(parents=True, exist_ok=True)
    (codex_dir / "config.toml").write_text(
        f'model = "{model}"\n'
        f'model_provider = "{CODEX_PROVIDER}"\n'
        'approval_policy = "never"\n'
        'sandbox_mode = "danger-full-access"\n'
        "check_for_update_on_startup = false\n"
        "\n[analytics]\nenabled = false\n"
        "\n[feedback]\nenabled = false\n"
        "\n[features]\nplugins = false\nremote_plugin = false\napps = false\n"
        f"\n[model_providers.{CODEX_PROVIDER}]\n"
        f'name = "{CODEX_PROVIDER}"\n'
        f'base_url = "{base_url.rstrip("/")}"\n'
        'wire_api = "responses"\n'
        f'env_key = "{CODEX_KEY_ENV}"\n',
        encoding="utf-8",
    )
    env = _base_env(home)
    env["CODEX_HOME"] = str(codex_dir)
    env[CODEX_KEY_ENV] = api_key
    return env


def claude_argv(bin_dir: Path, prompt: str, model: str, *, stream_json: bool = False) -> list[str]:
    """argv for one ``claude -p`` turn (text output, or stream-json with --verbose).

    The ``Read`` tool needs no permission flag in ``-p`` mode; ``Bash``/``Write``
    would need ``--allowedTools`` or ``--dangerously-skip-permissions``.
    """
    argv = [str(bin_dir / "claude"), "-p", prompt, "--model", model]
    if stream_json:
        argv += ["--output-format", "stream-json", "--verbose"]
    return argv


def codex_argv(bin_dir: Path, prompt: str, *, json_output: bool = False) -> list[str]:
    """argv for one ``codex exec`` turn (model comes from ``config.toml``)."""
    argv = [str(bin_dir / "codex"), "exec", "--skip-git-repo-check"]
    if json_output:
        argv.append("--json")
    argv.append(prompt)
    return argv


def run_cli(
    argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run a CLI with stdin closed (both CLIs otherwise wait on stdin)."""
    return subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
