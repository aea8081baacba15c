"""Test-session settings shared by every test directory.

`make test` spreads each backend's run over two pytest-xdist workers, one test file
per work unit (`--dist loadfile`, so module fixtures are built once). Workers take
files in collection order, so the costly files come first (the notebooks, then files
with `large` tests): the last files to start are then short and both workers end
close together.
"""


def pytest_collection_modifyitems(config, items):
    def rank(item):
        if item.path.name == "notebooks_test.py":
            return 0
        return 1 if item.path in large_files else 2

    large_files = {item.path for item in items if item.get_closest_marker("large")}
    order = {item.path: i for i, item in reversed(list(enumerate(items)))}
    items.sort(key=lambda item: (rank(item), order[item.path]))
