"""Logging for the companion's guards: each failure is logged the first time only."""

import logging

LOG = logging.getLogger("comfy_monitor_companion")


class Once:
    """Remembers which failures were logged, so a broken hook does not flood the server log."""

    def __init__(self):
        self._seen = set()

    def exception(self, key, message):
        """Logs the exception being handled under `key`, the first time only."""
        if key in self._seen:
            return
        self._seen.add(key)
        LOG.warning("comfy-monitor companion: %s (logged once; ComfyUI carries on)", message, exc_info=True)

    def warning(self, key, message, *args):
        if key in self._seen:
            return
        self._seen.add(key)
        LOG.warning("comfy-monitor companion: " + message, *args)
