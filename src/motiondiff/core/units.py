"""Durations and sizes as people read them, in every message the commands print."""


def duration(seconds: float) -> str:
    """'42 s', '3 min 05 s', '2 h 07 min'."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def megabytes(size: float) -> str:
    """A size in bytes as `du -h` says it (powers of 1024): '272 MB', '1.4 MB', '12 KB'."""
    if size >= 10 * 2**20:
        return f"{size / 2**20:,.0f} MB"
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{max(size / 2**10, 1):.0f} KB"
