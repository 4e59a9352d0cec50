"""The order document that bench/make-docs.py and bench/make-many-docs.py write: a
MongoDB-like document of every common type, ~300 bytes once pymongo encodes it."""
import datetime

from bson import Decimal128, Int64

BASE = datetime.datetime(2015, 1, 1, tzinfo=datetime.timezone.utc)
WORDS = "ship anchor sail harbor rum compass treasure island parrot captain".split()


def order(rng, i, oid):
    """Document number `i` with `_id` `oid`, its fields drawn from `rng`."""
    return {
        "_id": oid,
        "customer": f"user{rng.randrange(100_000)}@example.org",
        "items": [{"sku": f"SKU-{rng.randrange(999):03d}", "qty": rng.randrange(1, 5),
                   "price": round(rng.uniform(1, 300), 2)} for _ in range(rng.randrange(1, 4))],
        "total": Int64(rng.randrange(10**9)),
        "amount": Decimal128(f"{rng.randrange(10**6)}.{rng.randrange(100):02d}"),
        "paid": rng.random() < 0.5,
        "placed": BASE + datetime.timedelta(seconds=i * 37),
        "note": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 12))),
    }
