"""Dataset defaults shared by the library and the CLI.

Kept in a module with no imports so ``portrait --help`` (which shows them) does not load NumPy,
SciPy or pandas.
"""

# Default pHash grouping threshold, in bits out of 64. On the MOT17 ground-truth crops in ../shared/data
# (resized to 256x128 like ingest's crops) 76% of same-person consecutive-frame pairs are within 8
# bits, and none of 71,547 different-person pairs is closer than 12: 8 keeps a 4-bit margin. pHash
# sets exactly 32 of 64 bits for almost every image (median split), so unrelated images sit near 32
# (sd ~4) and a random pair is within 8 bits with probability ~3e-10. See docs/dataset.md.
PHASH_THRESHOLD = 8

SPLIT_SUBSETS = ("train", "query", "gallery")
SPLIT_BY = ("identity", "movie")
# The paper: 426 test identities of 1,066 (640 train + 426 test).
SPLIT_TEST_FRACTION = 426 / 1066
# The paper: 12,361 queries over 404 identities, ~30 per identity.
SPLIT_QUERIES_PER_IDENTITY = 30
