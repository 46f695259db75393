//! Flux reads against a local HTTP server speaking InfluxDB 2.x's `/api/v2/query` protocol
//! (Debian ships only InfluxDB 1.6, which has no Flux): it checks the token header, the org
//! parameter and the JSON body, and answers annotated CSV exactly as InfluxDB 2.x does.

use std::io::{Read, Write};
use std::net::TcpListener;

use runtime::sources::flux::{FluxConfig, metrics_query};
use workbench::frames::{f64_column, remote::read_flux, server_column, timestamps_ms};

const CSV: &str = "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string,string\r\n\
#group,false,false,true,true,false,false,true,true,true\r\n\
#default,_result,,,,,,,,\r\n\
,result,table,_start,_stop,_time,_value,_field,_measurement,server\r\n\
,,0,2024-01-15T00:00:00Z,2024-01-16T00:00:00Z,2024-01-15T00:00:10Z,45.2,value,cpu_usage,web-01\r\n\
,,0,2024-01-15T00:00:00Z,2024-01-16T00:00:00Z,2024-01-15T00:00:20Z,47.5,value,cpu_usage,web-01\r\n\
,,1,2024-01-15T00:00:00Z,2024-01-16T00:00:00Z,2024-01-15T00:00:10Z,61,value,memory_usage,web-01\r\n\
\r\n";

/// Serve one request; returns what the client sent.
fn serve_once(status: &str, body: &'static str) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let status = status.to_string();
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.read(&mut buf).unwrap();
            req.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&req).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                    .unwrap_or(0);
                if req.len() >= end + 4 + len {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        let reply =
            format!("HTTP/1.1 {status}\r\ncontent-type: text/csv\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        conn.write_all(reply.as_bytes()).unwrap();
        String::from_utf8_lossy(&req).to_string()
    });
    (url, handle)
}

fn cfg(url: String) -> FluxConfig {
    FluxConfig { url, org: "acme".into(), bucket: "metrics".into(), token: "tok-secret".into() }
}

#[test]
fn flux_records_become_a_wide_frame() {
    let (url, server) = serve_once("200 OK", CSV);
    let metrics = vec!["cpu_usage".to_string(), "memory_usage".to_string()];
    let (df, dups) = read_flux(&cfg(url), &metrics, 1_705_276_800_000, 1_705_363_200_000).unwrap();
    let request = server.join().unwrap();
    assert!(request.starts_with("POST /api/v2/query?org=acme "), "{request}");
    assert!(request.contains("authorization: Token tok-secret") || request.contains("Authorization: Token tok-secret"), "{request}");
    assert!(request.contains("from(bucket: \\\"metrics\\\")") && request.contains("r._measurement == \\\"memory_usage\\\""), "{request}");
    assert_eq!(dups, 0);
    assert_eq!(df.height(), 2);
    assert_eq!(timestamps_ms(&df).unwrap(), vec![1_705_276_810_000, 1_705_276_820_000]);
    assert_eq!(server_column(&df, "?").unwrap(), vec!["web-01", "web-01"]);
    assert_eq!(f64_column(&df, "cpu_usage").unwrap(), vec![Some(45.2), Some(47.5)]);
    assert_eq!(f64_column(&df, "memory_usage").unwrap(), vec![Some(61.0), None]);
}

#[test]
fn flux_errors_carry_the_servers_message_but_not_the_token() {
    let (url, server) = serve_once("401 Unauthorized", "{\"code\":\"unauthorized\",\"message\":\"unauthorized access\"}");
    let err = read_flux(&cfg(url), &["cpu_usage".into()], 0, 1000).unwrap_err().to_string();
    server.join().unwrap();
    assert!(err.contains("unauthorized"), "{err}");
    assert!(!err.contains("tok-secret"), "token leaked: {err}");
    assert!(!format!("{:?}", cfg("x".into())).contains("tok-secret"));
}

#[test]
fn flux_query_quotes_names() {
    let q = metrics_query("b\"x", &["a\"b".into()], 1, 2);
    assert_eq!(
        q,
        "from(bucket: \"b\\\"x\") |> range(start: time(v: 1000000), stop: time(v: 2000000)) |> filter(fn: (r) => r._measurement == \"a\\\"b\")"
    );
}
