//! Scraping mediatord's `/metrics` endpoint over plain HTTP.

/// One scrape of a metrics endpoint: the response's head, and every sample line as
/// "name{labels}" → value.
pub fn scrape(url: &str) -> (String, std::collections::HashMap<String, f64>) {
    let (head, body) = scrape_head(url);
    let samples = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("sample");
            (k.to_string(), v.parse::<f64>().expect("value"))
        })
        .collect();
    assert!(body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    (head, samples)
}

/// The head (status line and headers) and the body of a GET of `url`.
pub fn scrape_head(url: &str) -> (String, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("path");
    let mut s = std::net::TcpStream::connect(host).expect("connect to metrics");
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}
