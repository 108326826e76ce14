//! The built-in test clip: a procedural video with real motion and texture, so that a
//! repeated (concealed) frame costs PSNR the way it would on camera footage. It is a
//! pure function of (resolution, frame index): the same frame is the same bytes on
//! every machine, so a peer can regenerate the reference to score what it played.
//!
//! Content: a textured landscape (value noise at two scales plus soft stripes) under a
//! slow camera pan, three textured objects moving at different speeds and bouncing off
//! the edges, and chroma that drifts over time.

use super::picture::{Picture, Resolution};

/// A deterministic hash of integer coordinates to `0..=255`.
fn hash(x: i32, y: i32, salt: u32) -> u8 {
    let mut h =
        (x as u32).wrapping_mul(0x9E37_79B1) ^ (y as u32).wrapping_mul(0x85EB_CA77) ^ salt.wrapping_mul(0xC2B2_AE3D);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    (h >> 24) as u8
}

/// Smooth value noise with a cell of `2^shift` pixels, `0.0..=255.0`.
fn value_noise(x: i32, y: i32, shift: u32, salt: u32) -> f32 {
    let (cx, cy) = (x >> shift, y >> shift);
    let size = (1 << shift) as f32;
    let fx = (x - (cx << shift)) as f32 / size;
    let fy = (y - (cy << shift)) as f32 / size;
    // Smoothstep weights.
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let v = |dx, dy| hash(cx + dx, cy + dy, salt) as f32;
    let top = v(0, 0) + (v(1, 0) - v(0, 0)) * sx;
    let bottom = v(0, 1) + (v(1, 1) - v(0, 1)) * sx;
    top + (bottom - top) * sy
}

/// Position along one axis of an object bouncing between 0 and `span`.
fn bounce(start: f32, speed: f32, t: f32, span: f32) -> f32 {
    if span <= 0.0 {
        return 0.0;
    }
    let p = (start + speed * t).rem_euclid(2.0 * span);
    if p > span { 2.0 * span - p } else { p }
}

struct Object {
    w: f32,
    h: f32,
    x: f32,
    y: f32,
    salt: u32,
    luma: f32,
}

/// Frame `n` of the clip at `resolution`.
pub fn frame(resolution: Resolution, n: u32) -> Picture {
    let (w, h) = (resolution.width() as i32, resolution.height() as i32);
    let t = n as f32;
    // Camera pan: world coordinate of the top-left pixel.
    let (pan_x, pan_y) = ((t * 2.5) as i32, (12.0 * (t * 0.03).sin()) as i32);
    let scale = w as f32 / 352.0;
    let objects: Vec<Object> =
        [(0.30, 0.28, 3.1, 1.7, 11u32, 230.0), (0.18, 0.35, -4.3, 2.9, 23, 40.0), (0.22, 0.16, 1.9, -3.7, 37, 180.0)]
            .iter()
            .enumerate()
            .map(|(i, &(fw, fh, vx, vy, salt, luma))| {
                let (ow, oh) = (fw * w as f32, fh * h as f32);
                Object {
                    w: ow,
                    h: oh,
                    x: bounce(i as f32 * 70.0 * scale, vx * scale, t, w as f32 - ow),
                    y: bounce(i as f32 * 40.0 * scale, vy * scale, t, h as f32 - oh),
                    salt,
                    luma,
                }
            })
            .collect();
    let mut pic = Picture::filled(resolution, 0);
    let (yp, up, vp) = pic.planes_mut();
    for y in 0..h {
        for x in 0..w {
            let (wx, wy) = (x + pan_x, y + pan_y);
            let coarse = value_noise(wx, wy, 5, 1);
            let fine = value_noise(wx, wy, 2, 2);
            let stripes = 40.0 * ((wx as f32 * 0.11 + wy as f32 * 0.05).sin());
            let mut v = 0.45 * coarse + 0.25 * fine + stripes + 20.0;
            for o in &objects {
                let (ox, oy) = (x as f32 - o.x, y as f32 - o.y);
                if ox >= 0.0 && oy >= 0.0 && ox < o.w && oy < o.h {
                    // Texture fixed to the object, so it moves with it.
                    let checker = if ((ox as i32 >> 3) + (oy as i32 >> 3)) & 1 == 0 { 30.0 } else { -30.0 };
                    v = o.luma + checker + 0.2 * (value_noise(ox as i32, oy as i32, 1, o.salt) - 128.0);
                }
            }
            yp[(y * w + x) as usize] = v.clamp(16.0, 235.0) as u8;
        }
    }
    let (cw, ch) = (w / 2, h / 2);
    for y in 0..ch {
        for x in 0..cw {
            let (wx, wy) = ((x * 2 + pan_x) as f32, (y * 2 + pan_y) as f32);
            let i = (y * cw + x) as usize;
            up[i] = (128.0 + 40.0 * (wx * 0.013 + t * 0.05).sin()) as u8;
            vp[i] = (128.0 + 40.0 * (wy * 0.017 - t * 0.04).cos()) as u8;
        }
    }
    pic
}

/// The first `frames` frames of the clip.
pub fn frames(resolution: Resolution, frames: u32) -> impl Iterator<Item = Picture> {
    (0..frames).map(move |n| frame(resolution, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::quality::psnr;

    #[test]
    fn clip_is_deterministic() {
        assert_eq!(frame(Resolution::QCIF, 17), frame(Resolution::QCIF, 17));
    }

    #[test]
    fn clip_moves_so_a_repeated_frame_costs_psnr() {
        // Consecutive frames differ clearly (motion), so concealment by repetition
        // is visible in PSNR, but they are not noise either.
        let a = frame(Resolution::QCIF, 10);
        let b = frame(Resolution::QCIF, 11);
        let d = frame(Resolution::QCIF, 14);
        let p1 = psnr(&a, &b).expect("same size");
        let p4 = psnr(&a, &d).expect("same size");
        assert!(p1 < 25.0, "neighbouring frames too alike: {p1:.1} dB");
        assert!(p4 < p1, "motion accumulates: {p4:.1} >= {p1:.1}");
        assert!(p1 > 8.0, "frames unrelated: {p1:.1} dB");
    }

    #[test]
    fn clip_has_texture() {
        let p = frame(Resolution::QCIF, 0);
        let y = p.y();
        let mean = y.iter().map(|&v| v as f64).sum::<f64>() / y.len() as f64;
        let var = y.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / y.len() as f64;
        assert!(var.sqrt() > 20.0, "flat picture: sd {:.1}", var.sqrt());
    }
}
