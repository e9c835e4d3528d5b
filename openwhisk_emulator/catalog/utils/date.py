from datetime import UTC, datetime


def main(args):
    """The current date and time (UTC, ISO 8601)."""
    return {"date": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
