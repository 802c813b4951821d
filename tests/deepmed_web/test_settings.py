import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args, env_overrides):
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "HTTPS", "SECRET_KEY", "ALLOWED_HOSTS")}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_settings_pass_check_deploy_without_warnings(tmp_path):
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env_overrides={
            "DEBUG": "false",
            "HTTPS": "true",
            "SECRET_KEY": "x" * 20 + "prod-secret-key-with-enough-entropy-0123456789abcdef",
            "ALLOWED_HOSTS": "deepmed.example.org",
            "DEEPMED_DATA_DIR": str(tmp_path),
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_does_flag_an_insecure_configuration(tmp_path):
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env_overrides={"DEBUG": "true", "DEEPMED_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode != 0
    assert "security.W" in result.stdout + result.stderr


def test_every_environment_variable_read_by_the_settings_is_documented():
    settings_src = (ROOT / "deepmed_web" / "settings.py").read_text()
    names = set(re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', settings_src))
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS"} <= names
    readme = (ROOT / "README.md").read_text()
    missing = sorted(name for name in names if f"`{name}`" not in readme)
    assert not missing, f"not in README's configuration table: {missing}"


def test_embedded_defaults_need_no_services(settings):
    if os.environ.get("REDIS_URL"):
        return  # services pass: covered by the services tests
    assert settings.EMBEDDED_MODE
    assert settings.CELERY_BROKER_URL == "memory://"
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"].endswith("ThreadSafeInMemoryChannelLayer")
