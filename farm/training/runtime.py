"""A worker process's torch settings: threads, quiet libraries, accelerator memory between jobs."""

from __future__ import annotations

import os
import warnings

import torch


def setup_worker(threads: int) -> None:
    """Use ``threads`` CPU threads and silence per-job progress bars and warnings of HF and
    Opacus."""
    torch.set_num_threads(max(1, threads))
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore")
    try:
        # lazy: transformers loads only where a worker runs jobs
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def free_accelerator_memory() -> None:
    """Return cached CUDA memory after a job (a no-op without a GPU)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
