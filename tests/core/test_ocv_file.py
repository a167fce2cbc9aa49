"""core/ocv_file.py: user OCV tables in the forms users have them, and their errors."""

from __future__ import annotations

import pytest

from gateway.core.chemistry import get_chemistry
from gateway.core.ocv_file import parse_ocv_csv, parse_ocv_table


def test_user_table_with_comments_and_temperature_column() -> None:
    text = (
        "# measured at 25 degC\n"
        "soc_pct,ocv_v,docv_dt_mv_per_k\n"
        "0,3.0,0.2\n"
        "50,3.6,0.0\n"
        "\n"
        "100,4.2,-0.2\n"
    )
    table = parse_ocv_csv(text, "user.csv")
    assert table.soc_pct == (0.0, 50.0, 100.0)
    assert table.voltage(25.0) == pytest.approx(3.3)
    # 10 K warmer at 0 %: +2 mV; the inverse lookup undoes it.
    assert table.voltage(0.0, 35.0) == pytest.approx(3.002)
    assert table.voltage(100.0, 35.0) == pytest.approx(4.198)
    assert table.soc(table.voltage(80.0, 35.0), 35.0) == pytest.approx(80.0, abs=0.01)
    chem = get_chemistry("nmc").with_ocv(table)
    assert chem.ocv is table
    assert chem.ocv_voltage(25.0) == pytest.approx(3.3)
    assert chem.name == "nmc"


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("a,b\n0,3\n100,4\n", "f.csv:1:", "header"),
        ("soc_pct,ocv_v,extra\n0,3,1\n100,4,1\n", "f.csv:1:", "header"),
        ("SOC (%),OCV (V)\n0,3\n1,4\n", "f.csv:1:", "says percent"),
        ("soc_fraction,ocv_v\n0,3\n50,4\n", "f.csv:1:", "says fraction"),
        ("soc_pct,ocv_mv\n0,3\n100,4\n", "f.csv:1:", "says mV"),
        ("soc_pct,ocv_v\n0,3000\n100,4000\n", "f.csv:1:", "says V"),
        ("soc_pct,ocv_v\n0,3.0\n50,x\n100,4.2\n", "f.csv:3:", "not a number"),
        ("soc_pct,ocv_v\n0,3.0\n50\n", "f.csv:3:", "expected 2 columns"),
        ("soc_pct,ocv_v\n0,3.0\n50,3.5\n40,3.6\n", "f.csv:4:", "soc_pct must increase"),
        ("soc_pct,ocv_v\n0,3.0\n50,3.5\n60,3.4\n", "f.csv:4:", "ocv_v must not decrease"),
        ("soc_pct,ocv_v\n0,3.0\n120,3.5\n", "f.csv:3:", "within 0..100"),
        ("soc_pct,ocv_v\n0,3.0\nnan,3.5\n", "f.csv:3:", "within 0..100"),
        ("soc_pct,ocv_v\n0,3.0\n100,9\n", "f.csv:3:", "0.5..5.5"),
        ("# c\nsoc_pct,ocv_v\n0,3.0\n", "f.csv:", "at least two rows"),
        ("", "f.csv:1:", "empty"),
        ("soc_pct,ocv_v,docv_dt_mv_per_k\n0,3,0\n100,4,99\n", "f.csv:3:", "docv_dt_mv_per_k"),
    ],
)
def test_malformed_user_table_names_file_and_row(text: str, where: str, what: str) -> None:
    with pytest.raises(ValueError, match=what) as info:
        parse_ocv_csv(text, "f.csv")
    assert str(info.value).startswith(where)


@pytest.mark.parametrize(
    ("text", "soc_unit", "v_unit", "soc_from", "v_from", "descending"),
    [
        ("soc_pct,ocv_v\n0,3.0\n50,3.6\n100,4.2\n", "percent", "V", "header", "header", False),
        (
            "SOC (%),OCV (mV)\n0,3000\n50,3600\n100,4200\n",
            "percent",
            "mV",
            "header",
            "header",
            False,
        ),
        (
            "SoC [0-1],Voltage [V]\n0,3.0\n0.5,3.6\n1,4.2\n",
            "fraction",
            "V",
            "header",
            "header",
            False,
        ),
        ("0,3.0\n0.5,3.6\n1,4.2\n", "fraction", "V", "values", "values", False),
        ("0,3000\n50,3600\n100,4200\n", "percent", "mV", "values", "values", False),
        ("OCV;SOC\n4,2;100\n3,6;50\n3,0;0\n", "percent", "V", "values", "values", True),
        (
            "Voltage\tSOC\n3000\t0\n3600\t50\n4200\t100\n",
            "percent",
            "mV",
            "values",
            "values",
            False,
        ),
    ],
)
def test_user_table_units_and_header_are_detected(
    text: str, soc_unit: str, v_unit: str, soc_from: str, v_from: str, descending: bool
) -> None:
    # Every spelling above is the same curve: 0/50/100 % at 3.0/3.6/4.2 V.
    table, fmt = parse_ocv_table(text, "user.csv")
    assert table.soc_pct == (0.0, 50.0, 100.0)
    assert table.ocv_v == pytest.approx((3.0, 3.6, 4.2))
    assert fmt.soc_unit.value == soc_unit
    assert fmt.voltage_unit.value == v_unit
    assert fmt.soc_unit_from.value == soc_from
    assert fmt.voltage_unit_from.value == v_from
    assert fmt.descending is descending
    said = fmt.describe(table)
    assert f"SoC as a {soc_unit} (from the {soc_from})" in said
    assert f"OCV in {v_unit} (from the {v_from})" in said
    assert "0..100 % -> 3.000..4.200 V" in said


def test_the_header_is_said_back_as_written() -> None:
    # A semicolon file's header is quoted with its semicolons, as the user will find it.
    table, fmt = parse_ocv_table("Voltage [V];SoC [0-1]\n4,2;1\n3,6;0,5\n3,0;0\n", "user.csv")
    assert fmt.describe(table).startswith("header 'Voltage [V];SoC [0-1]': SoC in column 2")


def test_a_table_short_of_0_to_100_percent_says_so() -> None:
    # The curve is clamped at its ends, so a table that stops at 50 % reads any higher voltage
    # as 50 %: check-config says it rather than printing the range as if it were whole.
    table, fmt = parse_ocv_table("soc_pct,ocv_v\n0,2.5\n10,3.2\n50,3.3\n", "half.csv")
    assert table.soc(3.4) == 50.0
    said = fmt.describe(table)
    assert "0..50 % only (not 0..100 %: SoC from a voltage stays within it) -> 2.5" in said
    full, fmt_full = parse_ocv_table("soc_pct,ocv_v\n0,2.5\n100,3.6\n", "full.csv")
    assert "only" not in fmt_full.describe(full)


def test_a_flat_table_is_refused_with_the_reason() -> None:
    # All at 3.3 V: every voltage would read as one SoC (the replay said 0 % and soc_low).
    with pytest.raises(ValueError, match=r"flat.csv: the OCV rises only 0 mV .*at least 5 mV"):
        parse_ocv_table("soc,ocv\n0,3.3\n50,3.3\n100,3.3\n", "flat.csv")


def test_flat_stretches_inside_a_table_and_partial_lfp_tables_pass() -> None:
    # LFP at mV resolution repeats values on its plateau; a table from 10 to 90 % rises ~140 mV.
    table, _ = parse_ocv_table("soc_pct,ocv_mv\n0,2500\n40,3300\n50,3300\n100,3600\n", "p.csv")
    assert table.ocv_v[1] == table.ocv_v[2]
    lfp = get_chemistry("lfp")
    rows = "".join(f"{s},{lfp.ocv_voltage(s):.4f}\n" for s in range(10, 91, 5))
    partial, _ = parse_ocv_table("soc_pct,ocv_v\n" + rows, "lfp_10_90.csv")
    assert partial.ocv_v[-1] - partial.ocv_v[0] > 0.1
    # The plateau's flattest 20 % (47..67 %) rises 6.3 mV: still a table.
    rows = "".join(f"{s},{lfp.ocv_voltage(s):.4f}\n" for s in range(47, 68))
    plateau, _ = parse_ocv_table("soc_pct,ocv_v\n" + rows, "lfp_plateau.csv")
    assert plateau.ocv_v[-1] - plateau.ocv_v[0] > 0.006


def test_a_table_of_too_many_rows_is_refused_before_it_is_parsed() -> None:
    rows = "".join(f"{i / 100:.2f},{2.5 + i * 1e-4:.4f}\n" for i in range(10_001))
    with pytest.raises(ValueError, match=r"big.csv: 10002 lines: .* at most 10000 rows"):
        parse_ocv_table("soc_pct,ocv_v\n" + rows, "big.csv")
    _, fmt = parse_ocv_table("soc_pct,ocv_v\n" + rows.split("\n", 1)[1], "ok.csv")
    assert fmt.rows == 10_000


@pytest.mark.parametrize("text", ["3.0,0\n3.6,50\n4.2,100\n", "3000;0\n3600;0,5\n4200;1\n"])
def test_a_no_header_table_with_ocv_first_says_the_columns_look_swapped(text: str) -> None:
    with pytest.raises(ValueError, match=r"swap.csv:1: the columns look swapped: without a hea"):
        parse_ocv_table(text, "swap.csv")


def test_a_field_beyond_the_csv_limit_is_a_clear_error_naming_its_row() -> None:
    # One 1 MB field in a table under the 1 MiB read bound: the csv module's field limit.
    text = "soc_pct,ocv_v\n0,2.5\n100,3.6" + "0" * 200_000 + "\n"
    with pytest.raises(ValueError, match=r"huge.csv:3: not a table row: field larger"):
        parse_ocv_table(text, "huge.csv")
