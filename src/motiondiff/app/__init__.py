"""The local web app: a page to generate motions from a finished run and watch them in the report's player."""
