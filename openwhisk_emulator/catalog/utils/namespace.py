import os


def main(args):
    """The namespace the action was invoked in."""
    return {"namespace": os.environ.get("__OW_NAMESPACE", "")}
