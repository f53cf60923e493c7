"""Building the TLS client context: every bad file fails at once, naming its setting."""

import ssl
import subprocess
from pathlib import Path

import aiormq.exceptions
import pytest

from liaison.cli.login import broker_tls
from liaison.common.errors import ConfigError
from liaison.common.tls import TlsFiles, client_context, handshake_failure
from liaison.directory.settings import load_settings
from liaison.hub.settings import HubSettings
from liaison.sdk import Client, ConnectFailed, tls_context
from tests.tls.conftest import Ca, make_dev_ca

AMQPS = "amqps://liaison-hub:pw@localhost:5671/liaison"


def test_dev_ca_files_make_a_verifying_context(dev_ca: Ca) -> None:
    """The CA and a client certificate load into a context that checks the broker and its name."""
    context = client_context(
        ca_file=dev_ca.ca, cert_file=dev_ca.cert("mag"), key_file=dev_ca.key("mag")
    )
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_client_certificate_names_the_account(dev_ca: Ca) -> None:
    """make-dev-ca.sh issues a client certificate whose subject CN is the account."""
    subject = subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-in", str(dev_ca.cert("unmas"))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert subject.strip().replace(" ", "") == "subject=CN=unmas"


@pytest.mark.parametrize("account", ["mag/CN=unmas", "-rf", "", "a b"])
def test_make_dev_ca_refuses_a_forged_account_name(tmp_path: Path, account: str) -> None:
    """An account name that could smuggle another subject in is refused, and nothing issued."""
    result = make_dev_ca(tmp_path / "tls", account)
    assert result.returncode == 2
    assert not (tmp_path / "tls").exists()


def test_missing_ca_file_names_the_variable(tmp_path: Path) -> None:
    """A CA file that is not there is a ConfigError naming LIAISON_TLS_CA_FILE."""
    with pytest.raises(ConfigError, match=r"^LIAISON_TLS_CA_FILE: cannot read"):
        TlsFiles(ca_file=tmp_path / "absent.pem").context()


def test_garbage_ca_file_names_the_variable(tmp_path: Path) -> None:
    """A CA file holding no certificate is refused, naming LIAISON_TLS_CA_FILE."""
    bad = tmp_path / "ca.pem"
    bad.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n" + b"x" * 5000)
    with pytest.raises(ConfigError, match=r"^LIAISON_TLS_CA_FILE: .* no usable CA"):
        TlsFiles(ca_file=bad).context()


def test_directory_as_certificate_names_the_variable(tmp_path: Path, dev_ca: Ca) -> None:
    """A client certificate path that cannot be read names LIAISON_TLS_CERT_FILE."""
    with pytest.raises(ConfigError, match=r"^LIAISON_TLS_CERT_FILE: cannot read"):
        TlsFiles(ca_file=dev_ca.ca, cert_file=tmp_path, key_file=dev_ca.key("mag")).context()


def test_key_of_another_certificate_is_refused(dev_ca: Ca) -> None:
    """mag's certificate with unmas's key does not load: both settings are named."""
    with pytest.raises(ConfigError, match="LIAISON_TLS_CERT_FILE/LIAISON_TLS_KEY_FILE"):
        TlsFiles(cert_file=dev_ca.cert("mag"), key_file=dev_ca.key("unmas")).context()


def test_key_without_certificate_is_refused(dev_ca: Ca) -> None:
    """A key alone is a mistake, not a silent no-op."""
    with pytest.raises(ConfigError, match="LIAISON_TLS_KEY_FILE is set but LIAISON_TLS_CERT"):
        TlsFiles(key_file=dev_ca.key("mag")).context()


def test_encrypted_key_fails_instead_of_prompting(dev_ca: Ca, tmp_path: Path) -> None:
    """A passphrase-protected key is refused at once; a service never waits on a prompt."""
    locked = tmp_path / "locked.pem"
    subprocess.run(
        [
            "openssl",
            "pkey",
            "-in",
            str(dev_ca.key("mag")),
            "-out",
            str(locked),
            "-aes256",
            "-passout",
            "pass:secret",
        ],
        check=True,
        capture_output=True,
    )
    with pytest.raises(ConfigError, match="encrypted key"):
        TlsFiles(cert_file=dev_ca.cert("mag"), key_file=locked).context()


def test_hub_settings_fail_fast_on_a_bad_tls_file(tmp_path: Path) -> None:
    """The hub does not start with an unreadable client certificate; the error names it."""
    env = {"LIAISON_AMQP_URL": AMQPS, "LIAISON_TLS_CERT_FILE": str(tmp_path / "nope.pem")}
    with pytest.raises(ConfigError, match=r"^LIAISON_TLS_CERT_FILE"):
        HubSettings.from_env(env)


def test_hub_refuses_tls_files_with_plain_amqp(dev_ca: Ca) -> None:
    """TLS files with an amqp:// URL would silently not be used: refused."""
    env = {
        "LIAISON_AMQP_URL": "amqp://liaison-hub:pw@127.0.0.1:5672/liaison",
        "LIAISON_TLS_CA_FILE": str(dev_ca.ca),
    }
    with pytest.raises(ConfigError, match="LIAISON_AMQP_URL is amqp://"):
        HubSettings.from_env(env)


def test_hub_settings_carry_the_tls_files(dev_ca: Ca) -> None:
    """With amqps:// the hub's context trusts the configured CA."""
    settings = HubSettings.from_env(
        {"LIAISON_AMQP_URL": AMQPS, "LIAISON_TLS_CA_FILE": str(dev_ca.ca)}
    )
    assert settings.tls.ca_file == dev_ca.ca
    context = settings.ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_certificate_login_url_needs_no_password(dev_ca: Ca) -> None:
    """With ?auth=external the hub looks up no password: the certificate is the login."""
    url = "amqps://liaison-hub@localhost:5671/liaison?auth=external"
    env = {
        "LIAISON_AMQP_URL": url,
        "LIAISON_CREDENTIALS_DIR": "/nonexistent",
        "LIAISON_TLS_CERT_FILE": str(dev_ca.cert("liaison-hub")),
        "LIAISON_TLS_KEY_FILE": str(dev_ca.key("liaison-hub")),
    }
    assert HubSettings.from_env(env).amqp_url == url


def test_certificate_login_without_a_certificate_is_refused() -> None:
    """?auth=external with no LIAISON_TLS_CERT_FILE cannot log in: the hub does not start."""
    url = "amqps://localhost:5671/liaison?auth=external"
    with pytest.raises(ConfigError, match=r"^LIAISON_TLS_CERT_FILE is required"):
        HubSettings.from_env({"LIAISON_AMQP_URL": url})


def test_provisioning_fails_fast_on_a_bad_ca(tmp_path: Path) -> None:
    """Provisioning's settings refuse an unreadable CA file by name."""
    env = {
        "LIAISON_MANAGEMENT_URL": "https://localhost:15671",
        "LIAISON_TLS_CA_FILE": str(tmp_path / "absent.pem"),
    }
    with pytest.raises(ConfigError, match=r"^LIAISON_TLS_CA_FILE"):
        load_settings(env)


def test_sdk_tls_context_names_its_parameter(tmp_path: Path) -> None:
    """The SDK's helper raises an SDK error naming the parameter, not a variable."""
    with pytest.raises(ConnectFailed, match=r"^ca_file: cannot read"):
        tls_context(ca_file=tmp_path / "absent.pem")


def test_sdk_refuses_a_context_for_plain_amqp(dev_ca: Ca) -> None:
    """An ssl_context with an amqp:// URL would be ignored by aio-pika: refused."""
    with pytest.raises(ConnectFailed, match="not amqps://"):
        Client.connect(
            "mag",
            "amqp://mag:pw@127.0.0.1:5672/liaison",
            ssl_context=tls_context(ca_file=dev_ca.ca),
        )


def test_cli_refuses_tls_options_with_plain_amqp(
    dev_ca: Ca, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--ca-file with an amqp:// URL is an error, not ignored."""
    for name in ("LIAISON_TLS_CA_FILE", "LIAISON_TLS_CERT_FILE", "LIAISON_TLS_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)

    class Args:
        ca_file = str(dev_ca.ca)
        cert_file = None
        key_file = None

    with pytest.raises(ConfigError, match="need an amqps:// URL"):
        broker_tls(Args(), "amqp://127.0.0.1:5672/liaison")  # type: ignore[arg-type]


def _verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    error.verify_code = code
    error.verify_message = message
    return error


def test_untrusted_broker_certificate_blames_the_ca_file() -> None:
    """A verification failure inside aiormq's wrapper names LIAISON_TLS_CA_FILE."""
    wrapped = aiormq.exceptions.AMQPConnectionError(_verify_error(19, "self-signed certificate"))
    error = handshake_failure(wrapped)
    assert error is not None
    assert str(error).startswith("LIAISON_TLS_CA_FILE: the broker's certificate is not signed")


def test_wrong_host_name_blames_the_url() -> None:
    """A certificate for another host names the URL setting, not the CA."""
    cause = _verify_error(62, "Hostname mismatch")
    try:
        raise aiormq.exceptions.AMQPConnectionError("handshake") from cause
    except aiormq.exceptions.AMQPConnectionError as exc:
        error = handshake_failure(exc)
    assert error is not None
    assert str(error).startswith("LIAISON_AMQP_URL: the broker's certificate is not issued")


def test_broker_alert_about_our_certificate_blames_the_cert_file() -> None:
    """The broker's certificate_required alert names LIAISON_TLS_CERT_FILE."""
    alert = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert")
    try:
        raise aiormq.exceptions.AMQPConnectionError("communication error") from alert
    except aiormq.exceptions.AMQPConnectionError as exc:
        error = handshake_failure(exc)
    assert error is not None
    assert str(error).startswith("LIAISON_TLS_CERT_FILE: the broker refused")


@pytest.mark.parametrize(
    "failure",
    [
        ConnectionRefusedError(111, "refused"),
        ConnectionResetError(104, "reset"),
        TimeoutError(),
        ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
    ],
)
def test_network_faults_are_not_configuration_errors(failure: BaseException) -> None:
    """Refused, reset, timed out or a non-TLS peer: retried, not a reason to stop."""
    assert handshake_failure(aiormq.exceptions.AMQPConnectionError(failure)) is None


def test_a_cyclic_exception_chain_ends() -> None:
    """An exception whose context points back at itself is walked once, not forever."""
    first = ConnectionError("a")
    second = ConnectionError("b")
    first.__context__ = second
    second.__context__ = first
    assert handshake_failure(first) is None
