"""The unpaired training batch every training model reads.

A batch is a dict ``{"x": (B, ...) images, "y": (B, ...) measurements}`` of *unrelated*
samples, with optional ``"x_params"`` / ``"y_params"``: dicts of per-sample tensors the
operator takes (MRI: ``{"mask": (B, W)}``). The older keys ``"x_mask"`` / ``"y_mask"`` are
read as ``{"mask": ...}``. Keras may hand the dict over wrapped in a 1-tuple.
"""

from __future__ import annotations


def unwrap(data, required: tuple[str, ...]) -> dict:
    """The batch dict of ``data`` (a dict or a 1-tuple of one); ``ValueError`` if a key in ``required`` is missing."""
    if isinstance(data, tuple) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict) or any(k not in data for k in required):
        raise ValueError(f"data: expected a dict with keys {list(required)} ('x' images, 'y' measurements), "
                         f"got {sorted(data) if isinstance(data, dict) else type(data).__name__}")
    return data


def params_of(data: dict, domain: str) -> dict | None:
    """``data[domain + "_params"]``, or the older ``{domain}_mask`` key as ``{"mask": ...}``, or None."""
    if f"{domain}_params" in data:
        return data[f"{domain}_params"]
    if f"{domain}_mask" in data:
        return {"mask": data[f"{domain}_mask"]}
    return None
