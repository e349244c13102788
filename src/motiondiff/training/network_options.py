"""What a network class takes, read from its constructor (no network is built): light, so that a command line is
checked (cli.preflight, training.config_checks) before Lightning is imported."""

import inspect

from motiondiff.core.errors import UserError

CROSS_ATTENTION = "CrossAttentionTransformer"


def keyword_options(cls: type) -> tuple:
    """(the keyword names cls(...) accepts, following **kwargs up to the base classes that receive them; whether
    **kwargs go all the way up to object, so that the class takes any keyword)."""
    names: list = []
    for klass in cls.__mro__:
        if klass is object:
            return names, True
        parameters = inspect.signature(klass.__init__).parameters.values()
        for parameter in parameters:
            variadic = parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
            if parameter.name != "self" and not variadic and parameter.name not in names:
                names.append(parameter.name)
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names, False
    return names, True


def constructor_options(cls: type) -> list:
    """Keyword names cls(...) accepts, following **kwargs up to the base classes that receive them."""
    return keyword_options(cls)[0]


def reads_text(network_class: type) -> bool:
    """Whether a network takes a caption (its constructor has text_dim)."""
    return "text_dim" in constructor_options(network_class)


def refuse_pooled_captions(network_name: str, why: str, fix: str) -> None:
    """UserError for a cross-attention network given one pooled vector per caption instead of a token sequence."""
    if network_name == CROSS_ATTENTION:
        raise UserError(
            f"network=cross_attention attends to the caption's token embeddings, but {why}; use network=adaln or "
            f"incontext, or {fix}."
        )
