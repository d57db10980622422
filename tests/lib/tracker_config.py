"""Config files for the tracker under test (its --config YAML).

config_yaml() writes {"section": {"key": value}} as YAML: every value as a JSON scalar or
flow list, both valid YAML for the tracker's loader. A None value leaves its key out (the
built-in default applies), and a section left without keys is left out too.
ConfigFile is a temporary file holding given text; write_config() puts config_yaml() into
a directory the caller owns.
"""
import json
import os
import tempfile


def config_yaml(sections):
    lines = []
    for section, keys in sections.items():
        present = [f"  {k}: {json.dumps(v)}" for k, v in keys.items() if v is not None]
        if present:
            lines += [f"{section}:"] + present
    return "\n".join(lines) + "\n"


def write_config(sections, directory):
    """Writes config_yaml(sections) to directory/config.yaml; returns its path."""
    path = os.path.join(directory, "config.yaml")
    with open(path, "w") as f:
        f.write(config_yaml(sections))
    return path


class ConfigFile:
    """A temporary YAML config file holding text, removed on exit."""

    def __init__(self, text):
        fd, self.path = tempfile.mkstemp(prefix="synapse-test-", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            f.write(text)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        self.remove()

    def remove(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
