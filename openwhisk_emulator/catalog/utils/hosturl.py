import os


def main(args):
    """The URL of the OpenWhisk API host this action runs under."""
    return {"url": os.environ.get("__OW_API_HOST", "")}
