"""A film with its heatmap as a reader sees it: the overlay with its caption above and its
colour bar below (a PNG), or as an interactive plotly figure (zoom, pan) with the same
colour bar; and the film, heatmap and lesions kept together (``FilmView``) so any view can
be redrawn without the model.

One rendering (``overlay.viridis_overlay``) feeds every outlet: the app's figure and its
PNG download, the command line's PNGs, and the films in the HTML report, so what a person
downloads or mails is what they saw. Text never goes on the film: a label over the top of a
mammogram hides tissue (the issue-17 review found the old caption doing just that).
"""

from __future__ import annotations

import base64
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont
from plotly.subplots import make_subplots

from core.atomic import atomic_path
from core.errors import BadConfigError
from core.geometry import Lesion, Transform
from core.render.overlay import (
    HEAT_FLOOR,
    LESION_RGB,
    Window,
    heat_weight,
    line_thickness,
    png_bytes,
    viridis_colours,
    viridis_overlay,
)

#: What the colour bar means, in the PNG and in the interactive figure alike.
HEAT_MEANING = "where the model looked"
LOW, HIGH = "low", "high"
LESION_MEANING = "red circle: marked lesion"
#: The opacity a view opens at: the heat is clear and the tissue under it still shows.
DEFAULT_OPACITY = 0.45
#: Long side of a kept view (the app's display size): about 5 MB a film at 1024 px.
DISPLAY_SIDE = 1024
#: Grey under the colour bar, so its low end shows what "the film shows through" means.
SCALE_GREY = 128
MARGIN_RGB = (255, 255, 255)
TEXT_RGB = (0, 0, 0)
#: Largest view file read back (a 1024-px film and heatmap compress far below this).
MAX_VIEW_BYTES = 16 * 1024 * 1024


def shrink(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` with its long side cut to ``side`` (area averaging, which neither aliases a
    fine texture nor invents values outside the image's range); smaller images are kept."""
    to_small = Transform.fit_long_side(image.shape, side, enlarge=False)
    if to_small.dst_shape == to_small.src_shape:
        return image
    return cv2.resize(image, to_small.dst_shape[::-1], interpolation=cv2.INTER_AREA)


@dataclass(frozen=True, eq=False)
class FilmView:
    """What any view of one film is drawn from: the film as 8-bit display grey
    (``overlay.display_grey``), its heatmap on the same grid in [0, 1], and the located
    lesions on that grid."""

    film: np.ndarray
    heat: np.ndarray
    lesions: tuple[Lesion, ...] = field(default=())

    def __post_init__(self) -> None:
        film, heat = np.asarray(self.film), np.asarray(self.heat)
        if film.ndim != 2 or film.dtype != np.uint8 or min(film.shape) < 1:
            raise BadConfigError(f"a film view needs an 8-bit grey film, got {film.dtype} "
                                 f"{film.shape}")
        if heat.shape != film.shape or not np.all(np.isfinite(heat)):
            raise BadConfigError(f"a film view's heatmap must be finite and of the film's "
                                 f"shape {film.shape}, got {heat.shape}")
        object.__setattr__(self, "heat", np.clip(heat.astype(np.float32), 0.0, 1.0))
        object.__setattr__(self, "lesions", tuple(one for one in self.lesions if one.located))

    def shrunk(self, side: int = DISPLAY_SIDE) -> FilmView:
        """The view with its long side at most ``side``, lesions moved with it."""
        to_small = Transform.fit_long_side(self.film.shape, side, enlarge=False)
        if to_small.dst_shape == to_small.src_shape:
            return self
        return FilmView(shrink(self.film, side), shrink(self.heat, side),
                        to_small.map_lesions(self.lesions))

    def save(self, path: str | Path) -> Path:
        """Write the view as a compressed ``.npz`` (atomically; heat kept to 1/255, which
        no eye tells apart), for the Evaluate page to redraw at any contrast or opacity."""
        target = Path(path)
        rows = np.array([lesion.as_row() for lesion in self.lesions],
                        dtype=np.float64).reshape(-1, 3)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, film=self.film,
                            heat=np.round(self.heat * 255.0).astype(np.uint8), lesions=rows)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                tmp.write_bytes(buffer.getvalue())
        except OSError as error:
            raise BadConfigError(f"{target}: cannot write the film view "
                                 f"({error.strerror})") from None
        return target

    @classmethod
    def load(cls, path: str | Path) -> FilmView:
        """A view ``save`` wrote. Run folders come from anywhere, so the file is judged
        before anything is expanded (its size, its members, their expanded sizes, each
        array's declared shape against the bytes it has) and read without pickle; anything
        else is one ``BadConfigError`` naming the file."""
        source = Path(path)
        try:
            if source.stat().st_size > MAX_VIEW_BYTES:
                raise BadConfigError(f"{source}: a film view of more than "
                                     f"{MAX_VIEW_BYTES // 2**20} MiB is not read")
            arrays = _view_arrays(source)
        except (OSError, zipfile.BadZipFile, ValueError, EOFError) as error:
            raise BadConfigError(f"{source}: cannot read the film view ({error})") from None
        film, heat, rows = arrays["film"], arrays["heat"], arrays["lesions"]
        if heat.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1:] != (3,) or \
                not np.all(np.isfinite(rows)):
            raise BadConfigError(f"{source}: not a film view (wrong array types)")
        return cls(film, heat.astype(np.float32) / 255.0,
                   tuple(Lesion.from_row(row) for row in rows))


#: The members of a stored view, and the most bytes any one may expand to (a 1024-px film).
_VIEW_MEMBERS = ("film", "heat", "lesions")
_MEMBER_BYTES = DISPLAY_SIDE * DISPLAY_SIDE + 64 * 1024
_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0}


def _view_arrays(source: Path) -> dict[str, np.ndarray]:
    """The view's arrays, each member read only once its expanded size is known to be
    small and its header's shape is covered by the bytes it holds (a header may claim any
    shape, and NumPy allocates what it claims before reading)."""
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(source) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        if set(infos) != {f"{name}.npy" for name in _VIEW_MEMBERS} or \
                max(info.file_size for info in infos.values()) > _MEMBER_BYTES:
            raise BadConfigError(f"{source}: not a film view (unexpected or oversized "
                                 "members)")
        for name in _VIEW_MEMBERS:
            data = archive.read(f"{name}.npy")  # at most the size checked above
            buffer = io.BytesIO(data)
            version = np.lib.format.read_magic(buffer)
            if version not in _HEADERS:
                raise BadConfigError(f"{source}: not a film view ({name}: .npy format "
                                     f"{version})")
            shape, _, dtype = _HEADERS[version](buffer)
            if dtype.hasobject or int(np.prod(shape)) * dtype.itemsize > len(data):
                raise BadConfigError(f"{source}: not a film view ({name} claims more "
                                     "than it holds)")
            buffer.seek(0)
            arrays[name] = np.lib.format.read_array(buffer, allow_pickle=False)
    return arrays


def caption(predicted: str | None = None, actual: str | None = None,
            synthetic: bool = False) -> str:
    """The line above a film: what the model said and, where known, what it is."""
    parts = [f"{what}: {name}" for what, name in (("predicted", predicted), ("actual", actual))
             if name is not None]
    return " | ".join(parts) + (" (SYNTHETIC model)" if synthetic and parts else "")


def overlay_picture(view: FilmView, text: str = "", opacity: float = DEFAULT_OPACITY,
                    window: Window | None = None) -> np.ndarray:
    """The PNG a person keeps: the overlay at ``opacity`` and ``window``, ``text`` in a band
    above the film and the colour bar (with the lesion mark, if any) in a band below."""
    overlay = viridis_overlay(view.film, view.heat, opacity, view.lesions, stretch=False,
                              window=window)
    return framed(overlay, text, lesions=bool(view.lesions))


def heat_scale(steps: int = 11) -> list[tuple[float, tuple[int, int, int]]]:
    """The colour bar: what a pixel of mid grey becomes at each heat at full opacity, from
    0 to 1. Its low end is the grey itself, as the film shows through there."""
    heat = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    colours = viridis_colours(heat).astype(np.float32)
    weight = heat_weight(heat)[:, None]
    mixed = np.round(SCALE_GREY + (colours - SCALE_GREY) * weight).astype(int)
    return [(float(h), (int(r), int(g), int(b))) for h, (r, g, b) in zip(heat, mixed)]


def framed(overlay: np.ndarray, text: str = "", lesions: bool = False) -> np.ndarray:
    """``overlay`` (RGB uint8) untouched, on a white canvas with ``text`` in a band above
    it and the colour bar in a band below; the canvas is widened (the film centred) when
    the words need more room than a narrow film gives."""
    rows, cols = overlay.shape[:2]
    size = max(11, 4 * line_thickness(overlay.shape) + 6)
    font = ImageFont.load_default(size=size)
    pad = max(4, size // 2)
    bar = max(60, cols // 3)
    label = f"{HEAT_MEANING}:"
    scale_width = (_width(font, label) + _width(font, LOW) + bar + _width(font, HIGH)
                   + 3 * pad)
    lines = [text] if text else []
    width = max(cols, scale_width + 2 * pad,
                *(_width(font, line) + 2 * pad for line in [*lines, LESION_MEANING]))
    line = size + pad
    top = (line + pad) if lines else 0
    bottom = line + pad + (line if lesions else 0)
    canvas = Image.new("RGB", (width, top + rows + bottom), MARGIN_RGB)
    left = (width - cols) // 2
    canvas.paste(Image.fromarray(np.ascontiguousarray(overlay)), (left, top))
    draw = ImageDraw.Draw(canvas)
    if text:
        draw.text((pad, pad), text, font=font, fill=TEXT_RGB)
    y = top + rows + pad
    x = pad
    for word in (label, LOW):
        draw.text((x, y), word, font=font, fill=TEXT_RGB)
        x += _width(font, word) + pad
    scale = heat_scale(bar)
    for step, (_, colour) in enumerate(scale):
        draw.line([(x + step, y + 1), (x + step, y + size)], fill=colour)
    draw.rectangle((x - 1, y, x + bar, y + size + 1), outline=TEXT_RGB)
    draw.text((x + bar + pad, y), HIGH, font=font, fill=TEXT_RGB)
    if lesions:
        y += line
        radius = size // 2 - 1
        draw.ellipse((pad, y + 1, pad + 2 * radius, y + 1 + 2 * radius), outline=LESION_RGB,
                     width=max(1, size // 8))
        draw.text((pad + 2 * radius + pad, y), LESION_MEANING.split(": ", 1)[1], font=font,
                  fill=TEXT_RGB)
    return np.asarray(canvas)


def film_figure(view: FilmView, text: str = "", opacity: float = DEFAULT_OPACITY,
                window: Window | None = None, plain_beside: bool = False,
                height: int = 640) -> go.Figure:
    """The overlay as a plotly image: zoom and pan come with plotly (drag a box, double
    click to go back); ``text`` is the title above the film and the colour bar stands
    beside it, off the film. ``plain_beside`` adds the film without heat on the left, its
    axes tied to the overlay's so both zoom together."""
    overlay = viridis_overlay(view.film, view.heat, opacity, view.lesions, stretch=False,
                              window=window)
    pictures = [("film", viridis_overlay(view.film, view.heat, 0.0, view.lesions,
                                          stretch=False, window=window))] if plain_beside else []
    pictures.append((f"heatmap at opacity {opacity:.2f}", overlay))
    figure = make_subplots(rows=1, cols=len(pictures), horizontal_spacing=0.02,
                           subplot_titles=[name for name, _ in pictures])
    rows, cols = view.film.shape
    for column, (name, picture) in enumerate(pictures, start=1):
        figure.add_trace(go.Image(source=_data_uri(png_bytes(picture)), name=name,
                                  hoverinfo="skip"), row=1, col=column)
    scale = [[h, f"rgb{colour}"] for h, colour in heat_scale()]
    figure.add_trace(go.Scatter(
        x=[None], y=[None], mode="markers", hoverinfo="skip", showlegend=False,
        marker={"colorscale": scale, "cmin": 0.0, "cmax": 1.0, "color": [0.0],
                "showscale": True,
                "colorbar": {"title": {"text": HEAT_MEANING, "side": "right"},
                             "tickvals": [0.0, HEAT_FLOOR, 1.0],
                             "ticktext": [LOW, "", HIGH], "thickness": 14}}),
        row=1, col=len(pictures))
    # "domain": the plot area shrinks to the film's shape, so no empty band shows beside it.
    figure.update_xaxes(range=[-0.5, cols - 0.5], showticklabels=False, ticks="", showgrid=False,
                        zeroline=False, matches="x", constrain="domain")
    figure.update_yaxes(range=[rows - 0.5, -0.5], showticklabels=False, ticks="", showgrid=False,
                        zeroline=False, matches="y", scaleanchor="x", constrain="domain")
    figure.update_layout(title={"text": text or None}, height=height, dragmode="zoom",
                         margin={"l": 10, "r": 10, "t": 60 if text else 30, "b": 10},
                         plot_bgcolor="rgba(0,0,0,0)")
    return figure


def _width(font: ImageFont.ImageFont | ImageFont.FreeTypeFont, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(np.ceil(right - left))


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
