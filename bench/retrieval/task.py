"""The synthetic retrieval task that train.py teaches and prompts.py tests (standard library only).

A document is random filler with key-value records scattered through it; questions follow it:

  value record   K k v      the key k holds the value v
  alias record   L a k      the key a holds whatever k holds (two hops)
  question       Q k  ->  v (for an alias key: the value of the key it names)

The answer is the token after the key's first appearance (for an alias, after the key found there):
plain induction, the circuit small transformers learn first. A marker between key and value, or a
question that ends after the key, turned the rounds of 2026-11-23 into a plateau at chance among the
document's values (about 1/records) for all of their 4 minutes.

Token ranges are disjoint, so only the record structure tells keys, values and filler apart. Keys are
unique within a document; records sit at uniformly random places, so the needed one (and, for an alias,
the record it points to) can be anywhere — in another context-parallel block than the question's.
Sequences are lists of ints; `rng` is a random.Random.
"""

VOCAB = 2048
BOS, EOS, Q, K, L = 0, 1, 2, 4, 6
FILLER = range(16, 512)
KEYS = range(512, 1536)  # one token a key: 1024 keys, enough for the 512 records of a 64K document
VALUES = range(1536, 2048)
# One-token keys and values: matching one token is the induction step a small model learns in a minute;
# multi-token keys (three tokens, two-token values) left a 3-minute run at 0% accuracy.
KEY_LEN, VALUE_LEN = 1, 1
QUERY_LEN = 1 + KEY_LEN  # Q k: the trailing tokens Star/APB take as the query
QA_LEN = QUERY_LEN + VALUE_LEN
TOKENS_PER_RECORD = 128  # document tokens per record, on average, in the test prompts
MIN_RECORDS = 8


def document(rng, length, tokens_per_record=TOKENS_PER_RECORD):
    """A document of `length` tokens (BOS first) and its records: (key, value, kind, start) with kind 'kv'
    or 'alias' (an alias's value is its target's) and start the record's first position."""
    n = max(MIN_RECORDS, length // tokens_per_record)
    n_alias = n // 4
    n_value = n - n_alias
    keys = unique_keys(rng, n)
    values = [rng.choices(VALUES, k=VALUE_LEN) for _ in range(n_value)]
    targets = rng.sample(range(n_value), n_alias)
    pieces = [[K, *keys[i], *values[i]] for i in range(n_value)]
    pieces += [[L, *keys[n_value + j], *keys[t]] for j, t in enumerate(targets)]
    meta = [(keys[i], values[i], "kv") for i in range(n_value)]
    meta += [(keys[n_value + j], values[t], "alias") for j, t in enumerate(targets)]
    order = rng.sample(range(n), n)
    filler = length - 1 - sum(len(p) for p in pieces)
    if filler < 0:
        raise ValueError(f"a document of {length} tokens cannot hold {n} records")
    # Records go between filler tokens, at sorted random cut points.
    cuts = sorted(rng.randint(0, filler) for _ in range(n))
    fill = rng.choices(FILLER, k=filler)
    ids, records, at = [BOS], [], 0
    for i, cut in zip(order, cuts):
        ids += fill[at:cut]
        at = cut
        records.append((*meta[i], len(ids)))
        ids += pieces[i]
    ids += fill[at:]
    assert len(ids) == length
    return ids, records


def unique_keys(rng, n):
    keys = set()
    while len(keys) < n:
        keys.add(tuple(rng.choices(KEYS, k=KEY_LEN)))
    return rng.sample(sorted(keys), n)


def question(key):
    return [Q, *key]


def pick_questions(rng, records, n, alias_share=0.5):
    """n records to ask about, about alias_share of them aliases (as many as there are)."""
    aliases = [r for r in records if r[2] == "alias"]
    direct = [r for r in records if r[2] == "kv"]
    n_alias = min(len(aliases), round(n * alias_share))
    picked = rng.sample(aliases, n_alias) + rng.sample(direct, n - n_alias)
    rng.shuffle(picked)
    return picked


def training_sequence(rng, length, n_questions, tokens_per_record=TOKENS_PER_RECORD):
    """A document followed by n_questions question-answer pairs, `length` tokens in all, and the positions
    whose next-token prediction is an answer token (the only ones the loss counts)."""
    ids, records = document(rng, length - n_questions * QA_LEN, tokens_per_record)
    targets = []
    for key, value, _, _ in pick_questions(rng, records, n_questions):
        ids += question(key)
        targets += [len(ids) - 1 + j for j in range(VALUE_LEN)]  # logits at p predict token p+1
        ids += value
    return ids, targets
