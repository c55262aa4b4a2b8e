"""nowcast: radar precipitation nowcasting from radar archives to verified forecasts.

The Python API (``nowcast.api``): ``forecast``, ``open_store``, ``read_scan``; loaded on first use
so that ``import nowcast`` stays light.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["forecast", "open_store", "read_scan"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from nowcast import api

        return getattr(api, name)
    raise AttributeError(f"module 'nowcast' has no attribute {name!r}")
