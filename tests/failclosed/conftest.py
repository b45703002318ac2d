from tests.failclosed.helpers import hf_cache

__all__ = ["hf_cache"]
