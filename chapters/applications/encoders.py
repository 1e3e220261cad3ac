"""Text encoders for few-shot text and relation classification: what is shared by the frameworks.

A metric learner (Prototypical Networks) and an optimization learner (MAML) both need an
*encoder* f that maps one example to a vector. For images the book uses Conv-4; for text we use
the two encoders of the few-shot text literature, each in ``encoders_{torch,tf,keras}.py`` with the
same names and canonical weights:

* **CNN** (``TextCNN``), the encoder of FewRel's Proto-CNN (Han et al. 2018, after Zeng et al.
  2014): every token becomes its word embedding (50-d), concatenated, for relation
  classification, with two *position embeddings* (5-d each) of its offset from the head and from
  the tail entity; a 1-D convolution of window 3 (230 filters, "same" padding) reads each token
  with its neighbours, a ReLU follows, and a max over the sentence's positions gives the 230-d
  vector:

      e_i = [W_word[w_i]; W_head[i - h]; W_tail[i - t]]           (position embeddings: FewRel only)
      f(x) = max_i ReLU(conv_3(e)_i)                              (230 filters)

  The position embeddings are what lets one sentence, "Marie Curie married Pierre Curie", give
  different vectors for (Marie, Pierre) and (Pierre, Marie): the encoder knows where the entities are.

* **Bag of embeddings** (``BagOfEmbeddings``): the mean of the word embeddings of the tokens that
  are not padding. It ignores word order and the entities: the baseline of Bao et al. (2020)'s "AVG".

No pretrained word vectors are used (none can be downloaded here): the word embeddings are
trained with the model, from the meta-training classes' episodes only. Canonical weight names:
``words.embeddings`` (V, 50), ``head_positions.embeddings`` and ``tail_positions.embeddings``
(2L, 5), ``conv.kernel`` (3, in, 230) in TensorFlow's (width, in, out) layout, ``conv.bias`` (230,).
"""

from __future__ import annotations

from common.errors import ConfigError

ENCODERS = ("cnn", "bag")
WORD_DIM = 50       # Han et al. 2018 use 50-d GloVe vectors; ours are trained from scratch
POSITION_DIM = 5    # each of the two position embeddings
FILTERS = 230       # the CNN's output size, as FewRel's Proto-CNN
WINDOW = 3          # tokens each filter reads
EMBEDDING_STD = 0.1  # start of the word and position embeddings: N(0, 0.1²). N(0, 1) (nn.Embedding's
                     # default) makes 230-d distances so large that 1-shot training stalled (loss 4.1 after
                     # 200 HuffPost episodes against 1.58 with 0.1)


def check_encoder(name: str) -> None:
    if name not in ENCODERS:
        raise ConfigError(f"--encoder must be one of {', '.join(ENCODERS)}, got {name!r}")


def embedding_size(encoder: str, filters: int = FILTERS, word_dim: int = WORD_DIM) -> int:
    """The length of f(x): the CNN's filters, or the bag's word dimension."""
    check_encoder(encoder)
    return filters if encoder == "cnn" else word_dim


def token_size(positions: int, word_dim: int = WORD_DIM, position_dim: int = POSITION_DIM) -> int:
    """The length of a token's vector e_i, the CNN's input channels: the word embedding, followed
    by the head and tail position embeddings when the data has entity positions."""
    return word_dim + (2 * position_dim if positions else 0)


def encoder_arguments(dataset) -> dict:
    """What an encoder needs to know of a :class:`~common.data.text.TextDataset`: its vocabulary
    size and the number of position ids (0 without entity positions)."""
    return {"vocabulary_size": len(dataset.vocabulary), "positions": dataset.positions}
