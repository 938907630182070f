"""Validation patterns end at the end of the string (JavaScript's `$`), not before a final newline."""

from __future__ import annotations

import aiohttp
import pytest
import slugid

from tclocal.core.errors import APIError
from tclocal.core.scopes import valid_scope
from tclocal.core.validation import SCOPE_LIST, SLUGID, Validator, ecma_regex

from .deployment import Deployment


@pytest.mark.tclocal_only("tc-local's validation library")
def test_dollar_means_the_end_of_the_string() -> None:
    assert ecma_regex(SLUGID).search(slugid.nice())
    assert not ecma_regex(SLUGID).search(slugid.nice() + "\n")
    # A `$` escaped or inside a class is a dollar sign.
    assert ecma_regex(r"^a\$[$]$").search("a$$")
    assert not valid_scope("abc\n") and valid_scope("abc") and valid_scope("")


@pytest.mark.tclocal_only("tc-local's validation library")
def test_schemas_refuse_a_final_newline() -> None:
    scopes = Validator(SCOPE_LIST)
    scopes.check(["queue:create-task:*"])
    with pytest.raises(APIError) as err:
        scopes.check(["queue:create-task:*\n"])
    assert err.value.code == "InputValidationError"


@pytest.mark.parametrize("path", ["queue/v1/task/{task}%0A", "queue/v1/task/{task}/runs/0%0A/artifacts"])
async def test_url_parameters_refuse_a_final_newline(tc: Deployment, path: str) -> None:
    url = f"{tc.root_url}/api/{path.format(task=slugid.nice())}"
    async with aiohttp.ClientSession() as http, http.get(url) as reply:
        assert reply.status == 400
        assert (await reply.json())["code"] == "InvalidRequestArguments"
