"""The metrics content type, for :mod:`webhook.handlers`; the format itself is :mod:`serving.exposition`."""

from serving.exposition import CONTENT_TYPE

__all__ = ["CONTENT_TYPE"]
