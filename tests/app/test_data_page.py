"""The Data page: every source leads to a summary, a film browser and the class histograms,
and every bad input to one error line, never an exception."""

from __future__ import annotations

import io
import socket
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO
from core.data import LOADERS, load_dataset
from core.data.records import MIAS_CLASSES
from core.data.synthetic import generate
from factories import rsna_export


@pytest.fixture
def data_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("MAMMO_DATA", str(tmp_path / "app-data"))
    monkeypatch.setenv("MAMMO_MODELS", str(tmp_path / "models"))
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    app.switch_page("pages/data.py").run()
    assert not app.exception
    return app


def metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def images(app: AppTest) -> list:
    return app.get("image")


def chart_spec(app: AppTest) -> str:
    charts = app.get("plotly_chart")
    assert len(charts) == 1
    return charts[0].proto.spec


def choose(app: AppTest, source: str) -> AppTest:
    return app.radio(key="data_source").set_value(source).run()


def test_mias_folder_shows_summary_browser_and_histograms(data_page: AppTest,
                                                          mias_root: Path) -> None:
    app = data_page
    app.text_input(key="mias_path").input(str(mias_root))
    app.button(key="use_mias").click().run()
    assert not app.exception and not app.error
    shown = metrics(app)
    assert (shown["Films"], shown["Classes"], shown["Patients"]) == ("256", "7", "128")
    assert not any("SYNTHETIC" in warning.value for warning in app.warning)
    # the 66 films Info.txt names but the folder lacks: one notice, its list folded once
    absent = [warning.value for warning in app.warning if "absent" in warning.value]
    assert absent == ["66 film(s) listed in Info.txt are absent; they are left out."]
    lists = [expander.label for expander in app.expander
             if any("mdb025" in text.value for text in expander.text)]
    assert lists == ["Which ones (all 66)"]
    assert sum("mdb025" in text.value for text in app.text) == 1
    assert all(frame.proto.placeholder == "—" for frame in app.dataframe)  # never "None"
    spec = chart_spec(app)
    assert all(name in spec for name in MIAS_CLASSES)
    assert "before balancing" in spec and "after balancing" in spec
    assert len(images(app)) == 12  # one page of thumbnails, never all 256

    app.get("pagination")[0].set_value(2).run()
    assert not app.exception and len(images(app)) == 12
    assert any("page 2 of 22" in caption.value for caption in app.caption)
    calc = app.multiselect[0]
    assert calc.label == "Class"
    calc.set_value(["CALC"]).run()
    count = sum(r.label == "CALC" for r in load_dataset("mias", mias_root).records)
    assert any(c.value.startswith(f"{count} film(s), page 1 of") for c in app.caption)
    assert len(images(app)) == min(count, 12)
    assert all(": CALC," in caption for image in images(app) for caption in image.captions)

    app.number_input(key="counts_target").set_value(1300).run()
    assert not app.exception and not app.error
    app.number_input(key="counts_target").set_value(10).run()  # fewer than the originals
    assert len(app.error) == 1 and "fewer than" in app.error[0].value
    assert not app.exception


def test_synthetic_films_are_labelled_synthetic(data_page: AppTest, tmp_path: Path) -> None:
    app = choose(data_page, "SYNTHETIC demo films")
    app.number_input(key="synthetic_n").set_value(14)
    app.selectbox(key="synthetic_size").set_value(128)
    app.button(key="use_synthetic").click().run()
    assert not app.exception and not app.error
    assert (tmp_path / "app-data/synthetic-n14-seed0-128px/Info.txt").is_file()
    assert metrics(app)["Films"] == "14"
    assert any("SYNTHETIC dataset" in warning.value for warning in app.warning)
    assert "SYNTHETIC" in app.subheader[0].value  # the active dataset's label
    assert "SYNTHETIC" in chart_spec(app)
    assert all(caption.startswith("SYNTHETIC ") for image in images(app)
               for caption in image.captions)


@pytest.mark.parametrize("folder, fault", [("/no/such/folder", "not a folder"),
                                           ("", "no Info.txt found")])
def test_a_bad_folder_is_one_error_line(data_page: AppTest, tmp_path: Path, folder: str,
                                        fault: str) -> None:
    app = data_page
    app.text_input(key="mias_path").input(folder or str(tmp_path))
    app.button(key="use_mias").click().run()
    assert not app.exception
    assert len(app.error) == 1 and fault in app.error[0].value
    assert "Traceback" not in app.error[0].value
    assert "active_dataset" not in app.session_state


def tar_gz(folder: Path, prefix: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=prefix)
    return buffer.getvalue()


def test_an_uploaded_archive_is_extracted_and_used(data_page: AppTest, tmp_path: Path) -> None:
    films = generate(tmp_path / "films", n=7, seed=2, size=64)
    app = choose(data_page, "MIAS archive (.tar.gz/.zip)")
    app.file_uploader(key="archive_upload").upload("my films.tar.gz", tar_gz(films, "mias"))
    app.run()
    app.button(key="use_archive").click().run()
    assert not app.exception and not app.error
    assert (tmp_path / "app-data/uploads/my_films/mias/Info.txt").is_file()
    assert metrics(app)["Films"] == "7"


def test_a_hostile_archive_is_refused_in_one_line(data_page: AppTest, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("../../escape.txt")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"evil"))
    app = choose(data_page, "MIAS archive (.tar.gz/.zip)")
    app.file_uploader(key="archive_upload").upload("evil.tar.gz", buffer.getvalue())
    app.run()
    app.button(key="use_archive").click().run()
    assert not app.exception
    assert len(app.error) == 1
    assert app.error[0].value.startswith("Archive refused: evil.tar.gz: member '../../escape.txt'")
    assert not list(tmp_path.rglob("escape.txt"))
    assert not (tmp_path / "app-data/uploads/evil").exists()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_proxy")
def test_download_through_a_local_server(data_page: AppTest, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    films = generate(tmp_path / "films", n=7, seed=4, size=64)
    (films / "Info.txt").rename(films / "README")  # as the peipa archive ships it
    served = tmp_path / "served"
    served.mkdir()
    (served / "all-mias.tar.gz").write_bytes(tar_gz(films, "all-mias"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("MAMMO_MIAS_URL",
                           f"http://127.0.0.1:{httpd.server_address[1]}/all-mias.tar.gz")
        app = choose(data_page, "Download mini-MIAS")
        app.button(key="download").click().run()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert not app.exception and not app.error
    assert metrics(app)["Films"] == "7"
    assert (tmp_path / "app-data/mias-download/all-mias/Info.txt").is_file()


@pytest.mark.usefixtures("no_proxy")
def test_offline_download_says_what_to_do(data_page: AppTest,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MAMMO_MIAS_URL", f"http://127.0.0.1:{port}/all-mias.tar.gz")
    app = choose(data_page, "Download mini-MIAS")
    app.button(key="download").click().run()
    assert not app.exception
    assert len(app.error) == 1
    message = app.error[0].value
    assert "could not download" in message and "all-mias.tar.gz" in message
    assert "MIAS archive (.tar.gz/.zip)" in message and "MIAS folder" in message


def test_cbis_subset_menus_come_from_the_loaders_declarations(data_page: AppTest,
                                                              cbis_root: Path) -> None:
    """The menus are the options CBIS-DDSM declares (``core.data.options``), and what is
    picked in them is what the active dataset is loaded with."""
    app = choose(data_page, "CBIS-DDSM folder")
    for option in LOADERS["cbis"].options:
        if option.recorded:
            assert app.selectbox(key=f"cbis_{option.name}").options == list(option.choices)
    app.selectbox(key="cbis_abnormality").set_value("mass")
    app.selectbox(key="cbis_mode").set_value("crop")
    app.text_input(key="cbis_path").input(str(cbis_root))
    app.button(key="use_cbis").click().run()
    assert not app.exception
    assert app.session_state["active_dataset"].options == {"abnormality": "mass", "mode": "crop"}


def test_an_rsna_folder_reads_as_cancer_and_no_cancer(data_page: AppTest, tmp_path: Path) -> None:
    """The export's layout: its folders shown as cancer and no cancer, women as patients,
    and the inverted films counted at once (the export does not mark them)."""
    root = rsna_export(tmp_path / "rsna-640", {
        "malignant": ["10_100", "10_101", "12_120"],
        "benign": ["10_102", "11_110", "11_111~", "11_112"]})
    app = choose(data_page, "RSNA screening folder")
    app.text_input(key="rsna_path").input(str(root))
    app.button(key="use_rsna").click().run()
    assert not app.exception and not app.error
    assert app.session_state["active_dataset"].name == "rsna"
    shown = metrics(app)
    assert (shown["Films"], shown["Classes"], shown["Patients"]) == ("7", "2", "3")
    assert shown["Films stored inverted (corrected before training)"] == "1"
    classes = app.dataframe[0].value
    assert list(classes["class"]) == ["no_cancer", "cancer"]
    assert list(classes["films"]) == [4, 3]
    assert list(classes["meaning"].str.split(" ").str[0]) == ["no", "cancer"]
    assert len(images(app)) == 7
    assert any(": cancer," in caption for image in images(app) for caption in image.captions)
