"""comfy-monitor companion: relays every job's execution traffic to the sockets that ask for it.

A ComfyUI custom-node package that adds no node. See README.md and, for the contract,
docs/companion-protocol.md in the comfy-monitor repository.
"""

from .hook import install

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

# The Companion when the hooks are in place, None when inactive.
companion = install()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
