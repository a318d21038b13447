//! `*`-only globs for tool, prompt and resource names and methods.

/// A `*`-only glob, compiled once at load: the common shapes (exact, `p*`,
/// `*s`, `*`) match without walking pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(GlobKind);

#[derive(Debug, Clone, PartialEq, Eq)]
enum GlobKind {
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// Literal pieces between stars (at least three).
    Pieces(Vec<String>),
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        let parts: Vec<&str> = pattern.split('*').collect();
        Self(match parts.as_slice() {
            [exact] => GlobKind::Exact((*exact).to_string()),
            ["", ""] => GlobKind::Any,
            [prefix, ""] => GlobKind::Prefix((*prefix).to_string()),
            ["", suffix] => GlobKind::Suffix((*suffix).to_string()),
            _ => GlobKind::Pieces(parts.iter().map(|p| p.to_string()).collect()),
        })
    }

    #[inline]
    pub fn is_match(&self, text: &str) -> bool {
        match &self.0 {
            GlobKind::Any => true,
            GlobKind::Exact(e) => text == e,
            GlobKind::Prefix(p) => text.starts_with(p.as_str()),
            GlobKind::Suffix(s) => text.ends_with(s.as_str()),
            GlobKind::Pieces(parts) => pieces_match(parts, text),
        }
    }
}

fn pieces_match(parts: &[String], text: &str) -> bool {
    let (Some((first, rest)), true) = (parts.split_first(), parts.len() >= 2) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return false;
    };
    if text.len() < first.len() + last.len()
        || !text.starts_with(first.as_str())
        || !text.ends_with(last.as_str())
    {
        return false;
    }
    // Leftmost match of each middle piece is optimal for `*`-only globs.
    let mut hay = &text[first.len()..text.len() - last.len()];
    for piece in middle {
        match hay.find(piece.as_str()) {
            Some(at) => hay = &hay[at + piece.len()..],
            None => return false,
        }
    }
    true
}
