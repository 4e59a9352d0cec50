"""What tests/check_mongo.py and tests/check_wt.py share: pymongo's decoding options
and reading the concatenated documents of a .bson file."""
import hashlib

from bson import json_util
from bson.codec_options import CodecOptions, DatetimeConversion

OPTS = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO, tz_aware=True)
RELAXED = json_util.JSONOptions(json_mode=json_util.JSONMode.RELAXED,
                                datetime_conversion=DatetimeConversion.DATETIME_AUTO, tz_aware=True)


def split(raw):
    """The raw documents of a concatenated .bson file (pymongo checks each one)."""
    out, at = [], 0
    while at < len(raw):
        n = int.from_bytes(raw[at:at + 4], "little")
        out.append(raw[at:at + n])
        at += n
    return out


def sha(b):
    return hashlib.sha256(b).hexdigest()
