"""What each experiment tracker (the `logger` group) needs installed, checked before anything is written.

Light on purpose: `preflight` checks a command line with it before Lightning is imported (tracking.trackers builds the
trackers themselves).
"""

import importlib.util
from dataclasses import dataclass
from typing import Optional

from motiondiff.core.errors import UserError


@dataclass(frozen=True)
class Tracker:
    """What a tracker class is called, the modules it imports, and the extra that installs them (None: a dependency)."""

    title: str
    modules: tuple
    extra: Optional[str]


TRACKERS = {
    "TensorBoardLogger": Tracker("TensorBoard", ("tensorboard",), None),
    "WandbLogger": Tracker("W&B", ("wandb",), "wandb"),
    "MLFlowLogger": Tracker("MLflow", ("mlflow",), "mlflow"),
}
SQL_STORE_MODULES = ("sqlalchemy", "alembic")  # what MLflow's SQLite store (tracking_uri: sqlite:///...) needs


def configured(logger_cfg) -> dict:
    """{key: node} of the trackers a `logger` config attaches (none for logger=null or logger=[])."""
    if logger_cfg is None:
        return {}
    return {key: node for key, node in logger_cfg.items() if node is not None}


def tracker_of(node) -> Optional[Tracker]:
    """The Tracker a logger node builds (None for others, e.g. the CSV logger)."""
    return TRACKERS.get(str(node.get("_target_", "")).rsplit(".", 1)[-1])


def needed_modules(node, tracker: Optional[Tracker]) -> tuple:
    """The modules a logger node needs: its tracker's, and SQLAlchemy and Alembic for an MLflow SQLite store."""
    if tracker is None:
        return ()
    sqlite = str(node.get("tracking_uri") or "").startswith("sqlite:")
    return tracker.modules + (SQL_STORE_MODULES if tracker.extra == "mlflow" and sqlite else ())


def check_tracker_packages(logger_cfg) -> None:
    """UserError naming the pip command when a chosen tracker's package is not installed."""
    for key, node in configured(logger_cfg).items():
        tracker = tracker_of(node)
        missing = [name for name in needed_modules(node, tracker) if importlib.util.find_spec(name) is None]
        if missing:
            install = (
                f"pip install 'motiondiff[{tracker.extra}]' (in a clone: pip install -e '.[{tracker.extra}]')"
                if tracker.extra
                else f"pip install -r requirements.txt (it pins {missing[0]})"
            )
            raise UserError(
                f"logger={key} needs the {missing[0]} package, which is not installed here: {install}, "
                f"or drop {key} from logger=[...]."
            )
