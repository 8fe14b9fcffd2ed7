//! The JSON array `--json` writes (one object per measure), and a strict little reader that
//! checks such a file (`--check-json`, used by scripts/test.sh), so no JSON crate is needed.

use crate::catalog;
use crate::results::{Figure, Results};
use crate::table::{budget_met, budget_text};
use std::fmt::Write;

fn string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A figure: integers everywhere but ratios.
fn number(unit: &str, v: f64) -> String {
    if unit == "ratio" {
        format!("{v:.1}")
    } else {
        format!("{}", v.round() as u64)
    }
}

/// `[{"name": .., "unit": .., "iterations": N, "min": N, "median": N, ...}, ...]`, in catalog
/// order. A measure not available yet has `"min": null, "median": null`, `"available": false`
/// and a `"reason"`; measures with a budget say it and whether the median meets it.
pub fn render(results: &Results) -> String {
    let mut objects = Vec::new();
    for spec in catalog::ALL {
        let figure = results
            .get(spec.name)
            .cloned()
            .unwrap_or(Figure::Unavailable("not reported".into()));
        let mut o = format!("{{\"name\": {}", string(spec.name));
        match &figure {
            Figure::Measured {
                unit,
                iterations,
                min,
                median,
            } => {
                let _ = write!(
                    o,
                    ", \"unit\": {}, \"iterations\": {iterations}, \"min\": {}, \"median\": {}, \
                     \"available\": true",
                    string(unit),
                    number(unit, *min),
                    number(unit, *median)
                );
            }
            Figure::Unavailable(reason) => {
                let _ = write!(
                    o,
                    ", \"unit\": {}, \"iterations\": 0, \"min\": null, \"median\": null, \
                     \"available\": false, \"reason\": {}",
                    string(spec.unit),
                    string(reason)
                );
            }
        }
        if spec.budget.is_some() {
            let met =
                budget_met(spec, &figure, results).map_or("null".to_string(), |m| m.to_string());
            let _ = write!(
                o,
                ", \"budget\": {}, \"budget_met\": {met}",
                string(&budget_text(spec, results))
            );
        }
        o.push('}');
        objects.push(o);
    }
    format!("[\n  {}\n]\n", objects.join(",\n  "))
}

/// A parsed JSON value (only what checking needs).
#[derive(Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Parses a whole JSON document (RFC 8259, without `\u` surrogate pairs).
pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("trailing characters at byte {}", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && b" \t\r\n".contains(&self.s[self.i]) {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }

    fn eat(&mut self, word: &str) -> bool {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        self.ws();
        match self.s.get(self.i) {
            None => self.err("unexpected end"),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ if self.eat("null") => Ok(Value::Null),
            _ if self.eat("true") => Ok(Value::Bool(true)),
            _ if self.eat("false") => Ok(Value::Bool(false)),
            _ => self.err("unexpected character"),
        }
    }

    fn object(&mut self) -> Result<Value, String> {
        self.i += 1;
        let mut fields = Vec::new();
        self.ws();
        if self.eat("}") {
            return Ok(Value::Object(fields));
        }
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return self.err("expected a key");
            }
            let key = self.string()?;
            self.ws();
            if !self.eat(":") {
                return self.err("expected ':'");
            }
            fields.push((key, self.value()?));
            self.ws();
            if self.eat("}") {
                return Ok(Value::Object(fields));
            }
            if !self.eat(",") {
                return self.err("expected ',' or '}'");
            }
        }
    }

    fn array(&mut self) -> Result<Value, String> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.eat("]") {
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.ws();
            if self.eat("]") {
                return Ok(Value::Array(items));
            }
            if !self.eat(",") {
                return self.err("expected ',' or ']'");
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return self.err("unterminated string");
            };
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return self.err("unterminated escape");
                    };
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).ok_or("short \\u")?;
                            let hex = std::str::from_utf8(hex).map_err(|e| e.to_string())?;
                            let code = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                            out.push(char::from_u32(code).ok_or("bad \\u")?);
                            self.i += 4;
                        }
                        _ => return self.err("bad escape"),
                    }
                }
                c if c < 0x20 => return self.err("control character in string"),
                _ => {
                    // Copy one UTF-8 sequence whole.
                    let start = self.i - 1;
                    let len = match c {
                        0xf0.. => 4,
                        0xe0.. => 3,
                        0xc0.. => 2,
                        _ => 1,
                    };
                    let bytes = self.s.get(start..start + len).ok_or("bad UTF-8")?;
                    out.push_str(std::str::from_utf8(bytes).map_err(|e| e.to_string())?);
                    self.i = start + len;
                }
            }
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        while self.i < self.s.len() && b"+-0123456789.eE".contains(&self.s[self.i]) {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
        // JSON has no leading '.', no '+', and no leading zeros.
        let digits = text.strip_prefix('-').unwrap_or(text);
        let leading_zero =
            digits.len() > 1 && digits.starts_with('0') && !digits[1..].starts_with('.');
        let ok_shape = digits.starts_with(|c: char| c.is_ascii_digit())
            && !leading_zero
            && !text.contains('+') | text.contains(['e', 'E']);
        match text.parse::<f64>() {
            Ok(v) if ok_shape => Ok(Value::Number(v)),
            _ => self.err("bad number"),
        }
    }
}

/// Checks a `--json` file: an array with one object per catalog measure, each with a string
/// unit and integer iterations, and integer (or, for ratios, numeric) min and median, or null
/// when not available. Returns the number of measures.
pub fn check(text: &str) -> Result<usize, String> {
    let Value::Array(items) = parse(text)? else {
        return Err("not a JSON array".into());
    };
    for spec in catalog::ALL {
        let o = items
            .iter()
            .find(|o| o.get("name") == Some(&Value::String(spec.name.into())))
            .ok_or(format!("no object for {}", spec.name))?;
        let unit = match o.get("unit") {
            Some(Value::String(u)) => u.as_str(),
            _ => return Err(format!("{}: no unit", spec.name)),
        };
        if !matches!(unit, "instructions" | "bytes" | "ratio" | "ns") {
            return Err(format!("{}: unknown unit {unit}", spec.name));
        }
        let integer = |v: &Value| matches!(v, Value::Number(n) if n.fract() == 0.0 && *n >= 0.0);
        if !o.get("iterations").is_some_and(integer) {
            return Err(format!("{}: iterations is not an integer", spec.name));
        }
        let available = o.get("available") != Some(&Value::Bool(false));
        for key in ["min", "median"] {
            let ok = match o.get(key) {
                Some(Value::Null) => !available,
                Some(v @ Value::Number(_)) => available && (unit == "ratio" || integer(v)),
                _ => false,
            };
            if !ok {
                return Err(format!("{}: bad {key}", spec.name));
            }
        }
    }
    Ok(items.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_writes_and_checks_every_name() {
        let mut r = Results::default();
        r.read_log(
            "b: bench: name=null_hypercall unit=instructions iterations=1000 min=40 median=41\n\
             b: bench: name=console_pv_64b unit=instructions iterations=10 min=300 median=300\n\
             b: bench: name=console_trap_64b unit=instructions iterations=10 min=9100 median=9200\n\
             b: bench: name=vm_switch unavailable=needs \"two\" VMs \\ here\n",
        );
        r.derive(Some(4096));
        let text = render(&r);
        assert_eq!(check(&text), Ok(catalog::ALL.len()));
        let v = parse(&text).unwrap();
        let Value::Array(items) = &v else { panic!() };
        assert_eq!(
            items[0].get("name"),
            Some(&Value::String("null_hypercall".into()))
        );
        assert_eq!(items[0].get("min"), Some(&Value::Number(40.0)));
        assert_eq!(items[0].get("budget_met"), Some(&Value::Bool(true)));
        let ratio = items
            .iter()
            .find(|o| o.get("name") == Some(&Value::String("console_trap_over_pv".into())))
            .unwrap();
        assert_eq!(ratio.get("min"), Some(&Value::Number(30.3)));
        let switch = items
            .iter()
            .find(|o| o.get("name") == Some(&Value::String("vm_switch".into())))
            .unwrap();
        assert_eq!(
            switch.get("reason"),
            Some(&Value::String("needs \"two\" VMs \\ here".into()))
        );
    }

    #[test]
    fn refuses_broken_json() {
        for bad in [
            "",
            "[",
            "[1,]",
            "{\"a\" 1}",
            "[\"x]",
            "[01]",
            "[1] x",
            "[nul]",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse(" {\"a\": [true, false, null, -1.5e2, \"\\u00e9\"]} "),
            Ok(Value::Object(vec![(
                "a".into(),
                Value::Array(vec![
                    Value::Bool(true),
                    Value::Bool(false),
                    Value::Null,
                    Value::Number(-150.0),
                    Value::String("é".into())
                ])
            )]))
        );
        assert!(
            check("[]")
                .unwrap_err()
                .contains("no object for null_hypercall")
        );
    }
}
