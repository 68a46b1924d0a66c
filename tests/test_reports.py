"""Results-file helpers: reproducible command lines and replaceable markdown sections."""

from neuralode_rnn.reports import command_line, write_section


def test_command_line_lists_only_changed_flags():
    defaults = {"sizes": (4, 8), "lr": 1e-3, "n_test": 100}
    config = {"sizes": [16, 32], "lr": 1e-3, "n_test": 50}
    assert command_line("python x.py", config, defaults, ("sizes", "lr", "n_test")) == \
        "python x.py --sizes 16 32 --n-test 50"


def test_write_section_replaces_only_its_own_block(tmp_path):
    path = tmp_path / "R.md"
    write_section(path, "a", "first A", "# Title")
    write_section(path, "b", "first B", "# Title")
    write_section(path, "a", "second A", "# Title")
    text = path.read_text()
    assert text.startswith("# Title\n")
    assert "second A" in text and "first A" not in text and "first B" in text
    assert text.index("second A") < text.index("first B")  # a stays where it was
