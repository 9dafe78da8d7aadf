"""Keeping library noise out of ftkit's output: progress bars, advice and import-time messages the user cannot
act on. ftkit reports progress itself; FTKIT_DEBUG=1 keeps everything."""

from __future__ import annotations


def quiet_libraries() -> None:
    """Silence library progress bars and advice: ftkit reports progress itself (FTKIT_DEBUG=1 keeps them)."""
    import functools
    import os
    import warnings

    if os.environ.get("FTKIT_DEBUG") == "1":
        return
    quiet_bitsandbytes_import()
    os.environ.setdefault("TQDM_DISABLE", "1")  # raw tqdm bars, e.g. GGUF de-quantization
    import datasets
    import tqdm.std
    import transformers

    # tqdm reads TQDM_DISABLE once, when first imported; if that was earlier, set the same default now.
    init = tqdm.std.tqdm.__dict__.get("__init__")
    if isinstance(init, functools.partialmethod) and "disable" not in init.keywords:
        tqdm.std.tqdm.__init__ = functools.partialmethod(init.func, **init.keywords, disable=True)
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(transformers|trl|peft|torch)\.")


def quiet_bitsandbytes_import() -> None:
    """peft imports bitsandbytes whenever it is installed (LoRA runs too), which logs at import time that the
    optional `kernels` package is missing: nothing the user can act on. Only that logger is touched, so library
    users of `ftkit.inference` keep their own logging (FTKIT_DEBUG=1 keeps the message)."""
    import logging
    import os

    if os.environ.get("FTKIT_DEBUG") != "1":
        logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
