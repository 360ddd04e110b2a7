//! Short codes people can read aloud: `7-acid-zinc-plaza`, a nameplate
//! (which room on the rendezvous) and three words from the EFF short word
//! list #1 (`web/words.txt`, shared with the page). The words are the PAKE
//! password and never leave the machine; see `pake`.

use std::fmt;
use std::str::FromStr;

use rand::Rng;

/// The word list, one word per line, sorted; the page fetches the same file.
const WORDS_TXT: &str = include_str!("../../web/words.txt");
/// Words in a code: 1296^3 = 2,176,782,336 codes per nameplate.
pub const CODE_WORDS: usize = 3;
/// Highest nameplate a code may carry.
pub const MAX_NAMEPLATE: u32 = 9999;
/// A misspelt word gets suggestions within this many edits.
const SUGGEST_DISTANCE: usize = 2;
const MAX_SUGGESTIONS: usize = 3;

/// The word list.
pub fn words() -> impl Iterator<Item = &'static str> {
    WORDS_TXT.lines().filter(|w| !w.is_empty())
}

fn is_word(word: &str) -> bool {
    let list: Vec<&str> = words().collect();
    list.binary_search(&word).is_ok()
}

/// A parsed code in canonical form.
#[derive(Clone, PartialEq, Eq)]
pub struct Code {
    /// Which room on the rendezvous: public, said first.
    pub nameplate: u32,
    /// The secret part, lowercase list words.
    pub words: [String; CODE_WORDS],
}

/// Why some text is not a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not a number and three words.
    #[error("a code is a number and {CODE_WORDS} words, like 7-acid-zinc-plaza")]
    Shape,
    /// The number is missing, zero, too large or has a leading zero.
    #[error("the code must start with a number from 1 to {MAX_NAMEPLATE}, like the 7 in 7-acid-zinc-plaza")]
    Nameplate,
    /// A word that is not in the list, with the nearest list words.
    #[error("{}", unknown_word_message(.word, .suggestions))]
    UnknownWord {
        /// The word as typed (lowercased).
        word: String,
        /// List words within two edits, closest first.
        suggestions: Vec<&'static str>,
    },
}

fn unknown_word_message(word: &str, suggestions: &[&str]) -> String {
    match suggestions {
        [] => format!("`{word}` is not one of the code words: check the code with the sender"),
        [one] => format!("`{word}` is not one of the code words: did you mean `{one}`?"),
        many => format!(
            "`{word}` is not one of the code words: did you mean {}?",
            many.iter()
                .map(|w| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    }
}

impl Code {
    /// A fresh code for `nameplate`, words from the OS's CSPRNG (via ThreadRng).
    pub fn generate(nameplate: u32) -> Code {
        let list: Vec<&str> = words().collect();
        let mut rng = rand::rng();
        let words = std::array::from_fn(|_| list[rng.random_range(0..list.len())].to_owned());
        Code { nameplate, words }
    }

    /// The same words under another nameplate.
    pub fn with_nameplate(&self, nameplate: u32) -> Code {
        Code {
            nameplate,
            words: self.words.clone(),
        }
    }

    /// The PAKE password: the canonical text.
    pub fn password(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Whether `text` looks like an attempt at a code rather than a ticket
    /// or link: it starts with digits followed by a separator.
    pub fn looks_like_code(text: &str) -> bool {
        let t = text.trim();
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && matches!(t.as_bytes().get(digits), Some(b'-' | b' '))
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.nameplate)?;
        for w in &self.words {
            write!(f, "-{w}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Code {
    // The words are the secret; logs get the nameplate only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({}-…)", self.nameplate)
    }
}

impl FromStr for Code {
    type Err = CodeError;

    /// Forgiving of how people type: case, surrounding space, and spaces or
    /// repeated separators between the parts.
    fn from_str(text: &str) -> Result<Code, CodeError> {
        let lower = text.trim().to_lowercase();
        let parts: Vec<&str> = lower
            .split(|c: char| c == '-' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .collect();
        let Some((first, rest)) = parts.split_first() else {
            return Err(CodeError::Shape);
        };
        let nameplate = parse_nameplate(first)?;
        // Unknown words are reported before a wrong count: "acid-zinc-plazza"
        // is better answered with the typo than with the shape.
        for w in rest {
            if !is_word(w) {
                return Err(CodeError::UnknownWord {
                    word: (*w).to_owned(),
                    suggestions: nearest_words(w),
                });
            }
        }
        let words: [String; CODE_WORDS] = rest
            .iter()
            .map(|w| (*w).to_owned())
            .collect::<Vec<_>>()
            .try_into()
            .map_err(|_| CodeError::Shape)?;
        Ok(Code { nameplate, words })
    }
}

fn parse_nameplate(text: &str) -> Result<u32, CodeError> {
    if !text.bytes().all(|b| b.is_ascii_digit()) || text.starts_with('0') || text.len() > 4 {
        return Err(CodeError::Nameplate);
    }
    match text.parse() {
        Ok(n) if (1..=MAX_NAMEPLATE).contains(&n) => Ok(n),
        _ => Err(CodeError::Nameplate),
    }
}

/// List words within [`SUGGEST_DISTANCE`] edits of `word`, closest first
/// (ties in list order), at most [`MAX_SUGGESTIONS`].
pub fn nearest_words(word: &str) -> Vec<&'static str> {
    let mut scored: Vec<(usize, &'static str)> = words()
        .map(|w| (edit_distance(word, w), w))
        .filter(|(d, _)| *d <= SUGGEST_DISTANCE)
        .collect();
    scored.sort_by_key(|(d, _)| *d);
    scored
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, w)| w)
        .collect()
}

/// Optimal string alignment distance (Damerau-Levenshtein with adjacent
/// swaps): the typos people make are a wrong, missing, extra or swapped letter.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_has_1296_unique_sorted_words() {
        let list: Vec<&str> = words().collect();
        assert_eq!(list.len(), 1296);
        assert!(list.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
        assert!(list
            .iter()
            .all(|w| (3..=5).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase())));
        assert!(is_word("zinc") && is_word("yoyo") && !is_word("yo-yo"));
    }

    #[test]
    fn parses_what_people_type() {
        let want = Code {
            nameplate: 7,
            words: ["acid".into(), "zinc".into(), "plaza".into()],
        };
        for text in [
            "7-acid-zinc-plaza",
            "  7-Acid-ZINC-plaza\n",
            "7 acid zinc plaza",
            "7--acid - zinc-plaza",
        ] {
            assert_eq!(text.parse::<Code>(), Ok(want.clone()), "{text:?}");
        }
        assert_eq!(want.to_string(), "7-acid-zinc-plaza");
        assert_eq!(want.password(), b"7-acid-zinc-plaza");
        assert_eq!(format!("{want:?}"), "Code(7-…)");
    }

    #[test]
    fn refuses_bad_nameplates_and_shapes() {
        for text in [
            "0-acid-zinc-plaza",
            "07-acid-zinc-plaza",
            "10000-acid-zinc-plaza",
            "x-acid-zinc-plaza",
        ] {
            assert_eq!(text.parse::<Code>(), Err(CodeError::Nameplate), "{text:?}");
        }
        for text in ["", "7", "7-acid-zinc", "7-acid-zinc-plaza-acorn"] {
            assert_eq!(text.parse::<Code>(), Err(CodeError::Shape), "{text:?}");
        }
    }

    #[test]
    fn a_misspelt_word_gets_the_nearest_words() {
        match "7-acid-zimc-plaza".parse::<Code>() {
            Err(CodeError::UnknownWord { word, suggestions }) => {
                assert_eq!(word, "zimc");
                assert_eq!(suggestions.first(), Some(&"zinc"));
            }
            other => panic!("{other:?}"),
        }
        // A swap of two letters is one edit.
        assert_eq!(nearest_words("plzaa").first(), Some(&"plaza"));
        let err = "7-acid-qqqqqqq-plaza".parse::<Code>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`qqqqqqq` is not one of the code words: check the code with the sender"
        );
        assert_eq!(edit_distance("abc", "acb"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn generated_codes_parse_back() {
        for n in [1, 42, MAX_NAMEPLATE] {
            let code = Code::generate(n);
            assert_eq!(code.to_string().parse::<Code>(), Ok(code.clone()));
            assert_eq!(code.with_nameplate(3).nameplate, 3);
        }
        assert!(Code::looks_like_code("7-acid"));
        assert!(Code::looks_like_code(" 12 acid"));
        assert!(!Code::looks_like_code("ferryabc"));
        assert!(!Code::looks_like_code("http://x/#ferry"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_text(text in "\\PC{0,40}") {
            let _ = text.parse::<Code>();
            let _ = Code::looks_like_code(&text);
        }
    }
}
