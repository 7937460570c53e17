import hashlib


def secret_hash(plaintext: str) -> str:
    """Hash of a server-generated secret (API tokens, deployment keys).

    The secrets carry 256 bits of randomness, so a fast hash is safe: there is no dictionary to attack,
    and the lookup stays cheap on the serving hot path.
    """
    return hashlib.sha256(plaintext.encode()).hexdigest()
