"""The synthetic retrieval task that train.py teaches and prompts.py tests (standard library only).

A document is random filler with key-value records scattered through it; questions follow it:

  record     K k v      the key k holds the value v
  question   Q k  ->  v

The answer is the token after the key's appearance in the document: plain induction, the circuit small
transformers learn first. Token ranges are disjoint, so only the record structure tells keys, values and
filler apart. Keys are unique within a document; records sit at random places, so the needed one can be
anywhere — in another context-parallel block than the question's. Sequences are lists of ints; `rng` is
a random.Random. (train.py builds its batches with the same layout in torch, on the GPU.)
"""

VOCAB = 2048
BOS, EOS, Q, K = 0, 1, 2, 4
UNK = 3  # the tokenizer's unknown word (vocab.py); in no prompt
FILLER = range(16, 512)
KEYS = range(512, 1536)  # one token a key: 1024 keys, enough for the 512 records of a 64K document
VALUES = range(1536, 2048)
RECORD_LEN = 3  # K k v
QUERY_LEN = 2  # Q k: the trailing tokens Star/APB take as the query
QA_LEN = QUERY_LEN + 1
TOKENS_PER_RECORD = 128  # document tokens per record, on average, in the test prompts
MIN_RECORDS = 16  # at least train.py's questions per sequence: they ask about distinct records


def document(rng, length, tokens_per_record=TOKENS_PER_RECORD):
    """A document of `length` tokens (BOS first) and its records: (key, value, start) with start the
    record's first position."""
    n = max(MIN_RECORDS, length // tokens_per_record)
    keys = rng.sample(KEYS, n)
    values = rng.choices(VALUES, k=n)
    filler = length - 1 - n * RECORD_LEN
    if filler < 0:
        raise ValueError(f"a document of {length} tokens cannot hold {n} records")
    # Records go between filler tokens, at sorted random cut points.
    cuts = sorted(rng.randint(0, filler) for _ in range(n))
    fill = rng.choices(FILLER, k=filler)
    ids, records, at = [BOS], [], 0
    for key, value, cut in zip(keys, values, cuts):
        ids += fill[at:cut]
        at = cut
        records.append((key, value, len(ids)))
        ids += [K, key, value]
    ids += fill[at:]
    assert len(ids) == length
    return ids, records


def question(key):
    return [Q, key]
