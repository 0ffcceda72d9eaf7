"""receipt-agent: gets every sale a store's tills export into Dintero, durably."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("receipt-agent")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"
