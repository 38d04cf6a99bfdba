"""Whether a hub id can be fetched at all, asked once and fast, before a library downloads it.

huggingface_hub retries each file of a download with backoff when the hub is out of reach
(about 25 s a file) before failing; a model, a sentence encoder or an MF checkpoint that is
neither cached nor reachable should say so at once instead:

    reason = unreachable("org/model", "config.json", token=None)
    if reason is not None:
        raise SomeUnavailableError(f"cannot download org/model: {reason}; fix: ...")
"""

from __future__ import annotations

from classifier.base import first_line

__all__ = ["unreachable"]


def unreachable(repo_id: str, filename: str, *, token: str | None = None) -> str | None:
    """A one-line reason when `repo_id` has no cached `filename` and the hub cannot be reached;
    None when it is cached, when `HF_HUB_OFFLINE` is set (the library then fails fast itself),
    or when the hub answers, even with an error (404, 401), which the download then reports.
    One HEAD request, no retries, `HF_HUB_ETAG_TIMEOUT` seconds at most."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError

    if constants.HF_HUB_OFFLINE:
        return None
    if isinstance(try_to_load_from_cache(repo_id, filename), str):
        return None  # cached: an unreachable hub falls back to the cache without retrying
    try:
        get_hf_file_metadata(
            hf_hub_url(repo_id, filename), token=token, timeout=constants.HF_HUB_ETAG_TIMEOUT
        )
    except HfHubHTTPError:
        return None
    except Exception as exc:  # DNS, refused, timeout, TLS: the hub is out of reach
        return f"the Hugging Face hub is unreachable ({type(exc).__name__}: {first_line(exc)})"
    return None
