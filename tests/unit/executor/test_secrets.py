"""Secret detection: every kind, in every field, and silence on identifiers.

Sample secrets are generated at import from a fixed seed, so no literal
credential sits in the source for other scanners to trip on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ulid import ULID

from attune.memory.v1 import memory_pb2
from executor_service.runs.store import new_run_id
from memory_service.security.secrets import SecretFinding, find_secrets, scan_text

_RNG = random.Random(20260117)
B62 = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits


def rand(alphabet: str, length: int) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(length))


def b64url(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _private_key() -> str:
    body = base64.b64encode(_RNG.randbytes(180)).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN RSA PRIVATE KEY-----\n{lines}\n-----END RSA PRIVATE KEY-----"


JWT = ".".join(
    [
        b64url({"alg": "HS256", "typ": "JWT"}),
        b64url({"sub": "svc:executor", "iat": 1768627799}),
        base64.urlsafe_b64encode(_RNG.randbytes(32)).decode().rstrip("="),
    ]
)

# kind -> (the secret itself, a text that holds it and nothing else secret)
SAMPLES: dict[str, tuple[str, str]] = {}


def _sample(kind: str, secret: str, template: str = "{}") -> None:
    SAMPLES[kind] = (secret, template.format(secret))


_sample("anthropic_api_key", "sk-ant-api03-" + rand(B62 + "-_", 93) + "AA", "key {} set")
_sample("openai_api_key", "sk-proj-" + rand(B62, 48), "OPENAI_API_KEY={}")
_sample("aws_access_key", "AKIA" + rand(UPPER_DIGITS, 16), "id {} used")
_sample("aws_secret_key", rand(B62 + "/+", 40), "aws_secret_access_key = {}")
_sample("github_token", "ghp_" + rand(B62, 36), "pushed with {}.")
_sample(
    "slack_token",
    f"xoxb-{rand(string.digits, 12)}-{rand(string.digits, 13)}-{rand(B62, 24)}",
    "bot {}",
)
_sample(
    "slack_webhook",
    f"https://hooks.slack.com/services/T{rand(UPPER_DIGITS, 8)}/B{rand(UPPER_DIGITS, 10)}/"
    + rand(B62, 24),
    "posted to {}",
)
_sample("stripe_key", "sk_live_" + rand(B62, 24), "charge with {}")
_sample("private_key", _private_key(), "deploy key:\n{}\n")
_sample("jwt", JWT, "session {} expired")
_sample("bearer_token", rand(B62, 32), "curl -H 'Authorization: Bearer {}' ...")
_sample("password_in_url", rand(B62, 14), "DATABASE_URL=postgres://app:{}@db.internal:5432/app")
_sample(
    "connection_string_password",
    rand(B62, 14) + "!",
    "Server=db;Database=app;User Id=app;Password={};",
)
_sample("high_entropy_string", rand(B62, 40), "the token is {} (rotate it)")


def test_every_required_kind_has_a_sample() -> None:
    assert set(SAMPLES) == {
        "anthropic_api_key",
        "openai_api_key",
        "aws_access_key",
        "aws_secret_key",
        "github_token",
        "slack_token",
        "slack_webhook",
        "stripe_key",
        "private_key",
        "jwt",
        "bearer_token",
        "password_in_url",
        "connection_string_password",
        "high_entropy_string",
    }


# Where a string can sit in a pattern, and the path a finding names.
Place = Callable[[memory_pb2.Pattern, str], None]


def _content(p: memory_pb2.Pattern, text: str) -> None:
    p.content = f"Run summary.\n{text}\nDone."


def _form_text(p: memory_pb2.Pattern, text: str) -> None:
    p.form_responses["notes"].string_value = text


def _form_option(p: memory_pb2.Pattern, text: str) -> None:
    p.form_responses["checks"].string_list_value.values.extend(["mypy", text])


def _tag(p: memory_pb2.Pattern, text: str) -> None:
    p.tags.extend(["release", text])  # after "python": tags[2]


def _metadata(p: memory_pb2.Pattern, text: str) -> None:
    p.metadata.update({"db": {"name": "app", "url": text}})


def _metadata_list(p: memory_pb2.Pattern, text: str) -> None:
    p.metadata.update({"hosts": ["a.internal", text]})


def _role(p: memory_pb2.Pattern, text: str) -> None:
    p.agents.add(role="test_runner")
    p.agents.add(role=text)


def _template_id(p: memory_pb2.Pattern, text: str) -> None:
    p.template_id = text


PLACES: dict[str, tuple[Place, str]] = {
    "content": (_content, "content"),
    "form_text": (_form_text, "form_responses.notes"),
    "form_option": (_form_option, "form_responses.checks[1]"),
    "tag": (_tag, "tags[2]"),
    "metadata": (_metadata, "metadata.db.url"),
    "metadata_list": (_metadata_list, "metadata.hosts[1]"),
    "agent_role": (_role, "agents[1].role"),
    "template_id": (_template_id, "template_id"),
}
# Identifier fields get no entropy rule: random ids are what they hold.
IDENTIFIER_PLACES = {"agent_role", "template_id"}


def base_pattern() -> memory_pb2.Pattern:
    pattern = memory_pb2.Pattern(
        id="20260117-052959-01kf2c3r8t4x5y6z7a8b9c0d1e",
        type=memory_pb2.PATTERN_TYPE_EXECUTION,
        template_id="python_package_publish",
        run_id="20260117-052959-01kf2c3r8t4x5y6z7a8b9c0d1e",
        runner="simulated",
        tags=["python"],
    )
    pattern.form_responses["test_coverage_required"].number_value = 80
    return pattern


def assert_value_hidden(findings: list[SecretFinding], secret: str) -> None:
    shown = repr(findings) + str(findings) + "".join(f.kind + f.field for f in findings)
    assert secret not in shown
    # Nor any telling piece of it.
    assert all(secret[i : i + 12] not in shown for i in range(0, max(1, len(secret) - 12), 4))


CASES = [
    pytest.param(kind, place, id=f"{kind}-{place}")
    for kind in SAMPLES
    for place in PLACES
    if not (kind == "high_entropy_string" and place in IDENTIFIER_PLACES)
]


@pytest.mark.parametrize(("kind", "place"), CASES)
def test_each_kind_is_found_in_each_field(kind: str, place: str) -> None:
    secret, text = SAMPLES[kind]
    put, path = PLACES[place]
    pattern = base_pattern()
    put(pattern, text)
    findings = find_secrets(pattern)
    assert findings == [SecretFinding(kind, path)]
    assert_value_hidden(findings, secret)


@pytest.mark.parametrize("place", sorted(IDENTIFIER_PLACES))
def test_identifier_fields_skip_the_entropy_rule(place: str) -> None:
    put, _ = PLACES[place]
    pattern = base_pattern()
    put(pattern, SAMPLES["high_entropy_string"][0])
    assert find_secrets(pattern) == []


def test_a_clean_pattern_has_no_findings() -> None:
    assert find_secrets(base_pattern()) == []


def test_one_finding_per_kind_and_field() -> None:
    pattern = base_pattern()
    key = SAMPLES["aws_access_key"][0]
    pattern.content = f"{key} and again {key}, and {SAMPLES['github_token'][0]}"
    assert find_secrets(pattern) == [
        SecretFinding("github_token", "content"),
        SecretFinding("aws_access_key", "content"),
    ]


def test_a_secret_in_a_map_key_is_found_and_never_shown() -> None:
    secret = SAMPLES["aws_access_key"][0]
    pattern = base_pattern()
    pattern.metadata.update({secret: {"url": SAMPLES["password_in_url"][1]}})
    pattern.form_responses[secret].bool_value = True
    findings = find_secrets(pattern)
    assert set(findings) == {
        SecretFinding("aws_access_key", "metadata.<key>"),
        SecretFinding("password_in_url", "metadata.*.url"),
        SecretFinding("aws_access_key", "form_responses.<key>"),
    }
    assert_value_hidden(findings, secret)


def test_a_key_that_is_not_a_plain_identifier_is_not_shown() -> None:
    pattern = base_pattern()
    pattern.metadata.update({"notes from alice@example.com": SAMPLES["stripe_key"][1]})
    assert find_secrets(pattern) == [SecretFinding("stripe_key", "metadata.*")]


def test_the_metadata_key_is_context_for_an_aws_secret_key() -> None:
    secret = SAMPLES["aws_secret_key"][0]
    pattern = base_pattern()
    pattern.metadata.update({"aws": {"secret_access_key": secret}})
    assert find_secrets(pattern) == [
        SecretFinding("aws_secret_key", "metadata.aws.secret_access_key")
    ]
    # Without an AWS word around, a 40 character value is only high entropy.
    assert scan_text(f"value {secret}") == ["high_entropy_string"]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("sk-" + rand(B62, 48), "openai_api_key"),
        ("sk-" + rand(B62, 20) + "T3BlbkFJ" + rand(B62, 20), "openai_api_key"),
        ("github_pat_" + rand(B62, 22) + "_" + rand(B62, 59), "github_token"),
        ("gho_" + rand(B62, 36), "github_token"),
        ("ASIA" + rand(UPPER_DIGITS, 16), "aws_access_key"),
        ("sk_test_" + rand(B62, 24), "stripe_key"),
        ("rk_live_" + rand(B62, 24), "stripe_key"),
        ("xoxp-" + rand(string.digits, 11) + "-" + rand(string.ascii_lowercase, 20), "slack_token"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA", "private_key"),
        ("-----BEGIN EC PRIVATE KEY-----", "private_key"),
        ("redis://:" + rand(B62, 12) + "@cache:6379/0", "password_in_url"),
        ("mysql --user=app --password=" + rand(B62, 10), "connection_string_password"),
        ("host=db port=5432 user=app pwd=" + rand(B62, 10), "connection_string_password"),
        ("POSTGRES_PASSWORD=" + rand(B62, 12), "connection_string_password"),
        ("https://x.example/cb?access_token=" + rand(B62, 30), "high_entropy_string"),
        (b64url({"alg": "none"}) + "." + b64url({"sub": "x"}) + ".", "jwt"),
    ],
)
def test_variants(text: str, kind: str) -> None:
    assert scan_text(text) == [kind]


@pytest.mark.parametrize(
    "text",
    [
        # A three-part token whose header has no `alg` is no JWT.
        b64url({"typ": "x"}) + "." + b64url({"a": 1}) + ".abc",
        # Placeholders and references, not values.
        "postgres://user:${DB_PASSWORD}@db/app",
        "postgres://user:<password>@db/app",
        "postgres://user:****@db/app",
        "Authorization: Bearer <token>",
        "Authorization: Bearer ${API_TOKEN}",
        "Authorization: Bearer YOUR_API_TOKEN_HERE",
        "connect(user=user, password=password)",
        "password=settings.db.password",
        "password=get_password()",
        "if password == expected:",
        "password = os.environ['DB_PASSWORD']",
        "PWD=/home/runner/work",
        "sk-ant-your-key-here-from-the-console",
        "ghp_" + "x" * 36,
        "AKIA" + "X" * 16 + "Y",  # 21 characters: no key id
    ],
)
def test_placeholders_are_not_secrets(text: str) -> None:
    assert scan_text(text) == []


_SHA256 = hashlib.sha256(b"attune").hexdigest()
BENIGN = [
    "20260117-052959-01kf2c3r8t4x5y6z7a8b9c0d1e",
    "python_package_publish-20260117-052959",
    "Run python_package_publish-20260117-052959 finished at 2026-01-17T05:29:59Z.",
    "01KF2C3R8T4X5Y6Z7A8B9C0D1E",
    "01kf2c3r8t4x5y6z7a8b9c0d1e",
    "550e8400-e29b-41d4-a716-446655440000",
    "urn:uuid:550E8400-E29B-41D4-A716-446655440000",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 (9fceb02)",
    f"sha256:{_SHA256}",
    f"digest {_SHA256.upper()}",
    hashlib.sha512(b"attune").hexdigest(),
    hashlib.md5(b"attune", usedforsecurity=False).hexdigest(),
    "claude-haiku-4-5, claude-sonnet-4-5-20250929, claude-opus-4-1, gpt-5-mini, gpt-4o-2024-08-06",
    "template python_package_publish, tier premium, role test_runner",
    "attune-services 0.1.0, grpcio==1.85.1, protobuf>=7.36,<8, v2.0.0-rc.1, 3.11.7",
    "/home/runner/work/attune/attune/memory_service/security/secrets.py",
    "C:\\Users\\JohnSmith\\Projects\\MyApp2024\\src\\Main.cs",
    "src/MyProject2024/Controllers/UserAccountController.cs",
    "https://github.com/anthropics/attune/blob/main/README.md#L10",
    "https://docs.google.com/document/d/1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms/edit",
    "https://pypi.org/project/attune-services/0.1.0/",
    "redis://cache.internal:6379/0 and postgres://app@db.internal:5432/app",
    "GetRecommendationsV2Handler, AbstractSingletonProxyFactoryBean2, ResNet50V2ImageNetWeights",
    "test_StorePattern_2_Dedupes_Identical iPhone15ProMaxUserGuide2024",
    "highs_and_lows_of_the_quarterly_report_summary",
    "The bearer of this report rotated the password in the vault; see the 1Password entry.",
    "password: see vault. Passwords must be 12+ characters. pwd is /tmp.",
    "Tests passed (142), coverage 87.5%, cost $0.0594 over 3 attempts in 12.4s.",
    "Escalated from cheap to premium after 2 failures; 05:29:59 UTC; 2026-01-17.",
    "integrity sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdB"
    "eoGlODJ6+SfaPg==",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ci@attune",
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBszCCAVmgAwIBAgIUQk1zV2Zq3Xn8Yb6Tq1Z0c5p4R8wwCgYIKoZIzj0EAwIw\n"
    "-----END CERTIFICATE-----",
    "task-runner sk-learn scikit-learn desk-lamp",
    "Use `Authorization: Bearer <token>` with a token from `attune token create`.",
    "Set DATABASE_URL=postgres://user:${DB_PASSWORD}@db/app in the environment.",
    "AWS region us-east-1, bucket attune-artifacts, key releases/attune-0.1.0.tar.gz",
    "aws s3 cp dist/ s3://attune-artifacts/releases/ --recursive",
    "ULID 01ARZ3NDEKTSV4RRFFQ69G5FAV; Mongo id 507f1f77bcf86cd799439011",
    "id: p-20260117-052959; namespace team-a; owner svc:executor",
    "",
]


@pytest.mark.parametrize("text", BENIGN)
def test_benign_corpus_in_content_has_no_findings(text: str) -> None:
    pattern = base_pattern()
    pattern.content = text
    assert find_secrets(pattern) == []


def test_benign_corpus_in_every_field_has_no_findings() -> None:
    for text in BENIGN:
        pattern = base_pattern()
        for put, _ in PLACES.values():
            put(pattern, text)
        pattern.metadata.update({"notes": text, "list": [text, {"deep": text}]})
        assert find_secrets(pattern) == [], text


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()  # git's object ids


_ULIDS = st.binary(min_size=16, max_size=16).map(lambda b: str(ULID.from_bytes(b)))
_MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
_IDENTIFIERS = st.one_of(
    _ULIDS,
    _ULIDS.map(str.lower),
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: u.hex),
    st.binary(min_size=1, max_size=64).map(lambda b: hashlib.sha256(b).hexdigest()),
    st.binary(min_size=1, max_size=64).map(lambda b: _sha1(b)),
    st.binary(min_size=1, max_size=64).map(lambda b: _sha1(b)[:7]),
    st.binary(min_size=1, max_size=64).map(lambda b: hashlib.sha512(b).hexdigest()),
    st.text(alphabet="0123456789abcdef", min_size=1, max_size=80),
    st.text(alphabet="0123456789ABCDEF", min_size=1, max_size=80),
    _MOMENTS.map(new_run_id),
    _MOMENTS.map(lambda m: f"python_package_publish-{m:%Y%m%d-%H%M%S}"),
    _MOMENTS.map(lambda m: m.isoformat().replace("+00:00", "Z")),
)
_PROSE = st.sampled_from(
    ["run", "finished", "with", "tests", "passed", "the", "agent", "key:", "aws", "secret", "id"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_IDENTIFIERS, _PROSE), min_size=1, max_size=12))
def test_random_identifiers_never_produce_findings(parts: list[str]) -> None:
    pattern = base_pattern()
    pattern.content = " ".join(parts)
    pattern.tags.extend(parts[:3])
    pattern.metadata.update({"ids": parts, "aws_secret_key_id": parts[0]})
    assert find_secrets(pattern) == []


@settings(max_examples=50, deadline=None)
@given(st.uuids())
def test_uuids_in_every_field_never_produce_findings(value: uuid.UUID) -> None:
    pattern = base_pattern()
    for put, _ in PLACES.values():
        put(pattern, str(value))
    assert find_secrets(pattern) == []


@pytest.mark.parametrize(
    "token",
    [
        # Random GitHub tokens without a digit: about 1 in 600 of them.
        "ghp_nSJZehMpCECGSKOELbIpCMoUMcnsVesQZKCD",
        "ghp_uacUJXekelEJZIfBjJkuedkqgpbLdfXFWfrr",
    ],
)
def test_a_vendor_token_without_digits_is_still_a_secret(token: str) -> None:
    assert scan_text(token, "package_name") == ["github_token"]
    assert scan_text(f"push with {token} please") == ["github_token"]
