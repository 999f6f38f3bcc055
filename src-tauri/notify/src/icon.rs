//! The tray icon, drawn: a glyph in the state's colour inside a progress ring. Pure pixels; the
//! shell hands the RGBA to the tray.

use crate::tray::{Figure, IconState};
use image::{Rgba, RgbaImage};
use std::f32::consts::TAU;

/// The ring's filled part.
pub const PROGRESS: Rgba<u8> = Rgba([34, 197, 94, 255]);
/// The ring's unfilled part: a faint grey that reads on light and dark panels.
pub const TRACK: Rgba<u8> = Rgba([128, 128, 128, 96]);

/// The glyph's colour for each state. Disconnected is also the only hollow glyph, so it does
/// not rely on colour alone.
pub const fn state_colour(state: IconState) -> Rgba<u8> {
    match state {
        IconState::Idle => Rgba([148, 163, 184, 255]),
        IconState::Running => Rgba([59, 130, 246, 255]),
        IconState::Error => Rgba([239, 68, 68, 255]),
        IconState::Disconnected => Rgba([113, 113, 122, 255]),
    }
}

/// Radii as fractions of the icon's side.
const RING_OUTER: f32 = 0.48;
const RING_INNER: f32 = 0.34;
const GLYPH: f32 = 0.26;
const HOLE: f32 = 0.14;
/// Subsamples per pixel side, for smooth edges.
const SUPERSAMPLE: u32 = 4;
/// An estimated percent fills the ring in dashes: this many around the whole ring…
const DASHES: f32 = 16.0;
/// …each this share of its period, the track showing between them.
const DASH: f32 = 0.6;

/// A `size`×`size` icon. With `percent`, a ring around the glyph fills clockwise from twelve
/// o'clock, solid when the percent is measured and dashed when it is estimated; without, there
/// is no ring (idle, or only jobs without a known progress).
pub fn render_icon(state: IconState, percent: Option<Figure<u8>>, size: u32) -> RgbaImage {
    let s = size as f32;
    let centre = s / 2.0;
    let filled = percent.map(|p| f32::from(p.value.min(100)) / 100.0 * TAU);
    let dashed = percent.is_some_and(|p| p.estimated);
    let glyph = state_colour(state);
    let hollow = state == IconState::Disconnected;
    let at = |x: f32, y: f32| -> Option<Rgba<u8>> {
        let (dx, dy) = (x - centre, y - centre);
        let r = (dx * dx + dy * dy).sqrt() / s;
        if r <= GLYPH {
            return (!hollow || r >= HOLE).then_some(glyph);
        }
        let filled = filled?;
        if !(RING_INNER..=RING_OUTER).contains(&r) {
            return None;
        }
        // Clockwise from twelve o'clock, with y pointing down.
        let mut angle = dx.atan2(-dy);
        if angle < 0.0 {
            angle += TAU;
        }
        let on_dash = !dashed || (angle / TAU * DASHES).fract() < DASH;
        Some(if angle < filled && on_dash {
            PROGRESS
        } else {
            TRACK
        })
    };
    RgbaImage::from_fn(size, size, |px, py| {
        // Premultiplied sums over the subsamples.
        let mut sum = [0.0f32; 4];
        for i in 0..SUPERSAMPLE {
            for j in 0..SUPERSAMPLE {
                let x = px as f32 + (i as f32 + 0.5) / SUPERSAMPLE as f32;
                let y = py as f32 + (j as f32 + 0.5) / SUPERSAMPLE as f32;
                if let Some(Rgba([r, g, b, a])) = at(x, y) {
                    let a = f32::from(a);
                    sum[0] += f32::from(r) * a;
                    sum[1] += f32::from(g) * a;
                    sum[2] += f32::from(b) * a;
                    sum[3] += a;
                }
            }
        }
        if sum[3] == 0.0 {
            return Rgba([0, 0, 0, 0]);
        }
        let n = (SUPERSAMPLE * SUPERSAMPLE) as f32;
        let channel = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        Rgba([
            channel(sum[0] / sum[3]),
            channel(sum[1] / sum[3]),
            channel(sum[2] / sum[3]),
            channel(sum[3] / n),
        ])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(p: u8) -> Option<Figure<u8>> {
        Some(Figure::measured(p))
    }

    const SIZE: u32 = 64;

    /// The pixel in the middle of the ring at `degrees` clockwise from twelve o'clock.
    fn ring_at(img: &RgbaImage, degrees: f32) -> Rgba<u8> {
        let r = (RING_INNER + RING_OUTER) / 2.0 * SIZE as f32;
        let a = degrees.to_radians();
        let c = SIZE as f32 / 2.0;
        *img.get_pixel((c + r * a.sin()) as u32, (c - r * a.cos()) as u32)
    }

    const QUARTERS: [f32; 4] = [45.0, 135.0, 225.0, 315.0];

    #[test]
    fn at_zero_percent_the_ring_is_all_track() {
        let img = render_icon(IconState::Running, measured(0), SIZE);
        for d in QUARTERS {
            assert_eq!(ring_at(&img, d), TRACK, "at {d}°");
        }
    }

    #[test]
    fn at_fifty_percent_the_right_half_is_filled() {
        let img = render_icon(IconState::Running, measured(50), SIZE);
        assert_eq!(ring_at(&img, 45.0), PROGRESS);
        assert_eq!(ring_at(&img, 135.0), PROGRESS);
        assert_eq!(ring_at(&img, 170.0), PROGRESS);
        assert_eq!(ring_at(&img, 190.0), TRACK);
        assert_eq!(ring_at(&img, 225.0), TRACK);
        assert_eq!(ring_at(&img, 315.0), TRACK);
    }

    #[test]
    fn at_a_hundred_percent_the_ring_is_full() {
        let img = render_icon(IconState::Running, measured(100), SIZE);
        for d in QUARTERS.into_iter().chain([355.0]) {
            assert_eq!(ring_at(&img, d), PROGRESS, "at {d}°");
        }
    }

    #[test]
    fn an_estimated_percent_fills_in_dashes_where_a_measured_one_is_solid() {
        let measured = render_icon(IconState::Running, measured(50), SIZE);
        let estimated = render_icon(IconState::Running, Some(Figure::estimated(50)), SIZE);
        assert_ne!(measured, estimated);
        let period = 360.0 / DASHES;
        // Two periods into the ring: the middle of a dash, then of the gap after it.
        let dash = 2.0 * period + DASH / 2.0 * period;
        let gap = 2.0 * period + (1.0 + DASH) / 2.0 * period;
        assert_eq!(ring_at(&measured, dash), PROGRESS);
        assert_eq!(ring_at(&measured, gap), PROGRESS);
        assert_eq!(ring_at(&estimated, dash), PROGRESS);
        assert_eq!(
            ring_at(&estimated, gap),
            TRACK,
            "the track shows between dashes"
        );
        // The unfilled half is the same track either way, and so is the glyph.
        for d in [225.0, 315.0] {
            assert_eq!(ring_at(&estimated, d), ring_at(&measured, d), "at {d}°");
        }
        assert_eq!(
            estimated.get_pixel(SIZE / 2, SIZE / 2),
            measured.get_pixel(SIZE / 2, SIZE / 2)
        );
        // Less of the ring is green.
        let green = |img: &RgbaImage| img.pixels().filter(|p| **p == PROGRESS).count();
        assert!(green(&estimated) < green(&measured) * 3 / 4);
    }

    #[test]
    fn without_a_percent_there_is_no_ring() {
        let img = render_icon(IconState::Idle, None, SIZE);
        for d in QUARTERS {
            assert_eq!(ring_at(&img, d), Rgba([0, 0, 0, 0]), "at {d}°");
        }
        assert_eq!(
            *img.get_pixel(0, 0),
            Rgba([0, 0, 0, 0]),
            "corners stay clear"
        );
    }

    #[test]
    fn each_state_has_its_own_glyph_colour() {
        let centre = |state| *render_icon(state, measured(30), SIZE).get_pixel(SIZE / 2, SIZE / 2);
        assert_eq!(centre(IconState::Idle), state_colour(IconState::Idle));
        assert_eq!(centre(IconState::Running), state_colour(IconState::Running));
        assert_eq!(centre(IconState::Error), state_colour(IconState::Error));
        let all = [
            IconState::Idle,
            IconState::Running,
            IconState::Error,
            IconState::Disconnected,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(state_colour(*a), state_colour(*b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn the_disconnected_glyph_is_hollow() {
        let img = render_icon(IconState::Disconnected, None, SIZE);
        assert_eq!(*img.get_pixel(SIZE / 2, SIZE / 2), Rgba([0, 0, 0, 0]));
        let on_glyph = (SIZE as f32 / 2.0 + (HOLE + GLYPH) / 2.0 * SIZE as f32) as u32;
        assert_eq!(
            *img.get_pixel(on_glyph, SIZE / 2),
            state_colour(IconState::Disconnected)
        );
    }

    #[test]
    fn edges_are_smoothed() {
        let img = render_icon(IconState::Running, measured(100), SIZE);
        let partial = img.pixels().filter(|p| p.0[3] > 0 && p.0[3] < 255).count();
        assert!(partial > 0);
    }
}
