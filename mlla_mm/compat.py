"""Compatibility shims for the pinned OpenMMLab releases on torch >= 2.6 / numpy 2 (filled in later)."""


def apply() -> None:
    pass


apply()
