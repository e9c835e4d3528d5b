def main(args):
    """Answers with the parameters it was given."""
    return args
