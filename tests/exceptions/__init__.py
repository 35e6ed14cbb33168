import pytest

pytest.register_assert_rewrite("tests.exceptions.spec_rows")
