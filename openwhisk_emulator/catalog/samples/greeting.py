def main(args):
    """A friendly greeting for ``name`` from ``place``."""
    name = args.get("name", "stranger")
    place = args.get("place", "somewhere")
    return {"payload": f"Hello, {name} from {place}!"}
