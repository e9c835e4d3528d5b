"""owaction: WaddleBot's OpenWhisk action module."""

__version__ = "1.0.0"
MODULE_NAME = "openwhisk_action_module"
