//! Column alignment as docker's tabwriter fork does it (elastic tabstops, display-width cells).

use crate::width::str_width;

/// Parameters docker's formatter uses: `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`.
const MIN_WIDTH: usize = 10;
const PADDING: usize = 3;

/// A cell: a segment of text terminated by a tab or a line break.
#[derive(Clone, Copy, Default)]
struct Cell {
    size: usize,
    width: usize,
}

struct Writer {
    out: Vec<u8>,
    buf: Vec<u8>,
    pos: usize,
    cell: Cell,
    lines: Vec<Vec<Cell>>,
    widths: Vec<usize>,
}

/// Aligns tab-terminated cells of contiguous lines into columns, as Go's `tabwriter.Writer`
/// with minwidth 10, padding 3, padchar ' ' and no flags: a column is as wide as its widest
/// cell plus 3, at least 10; the text after a line's last tab is not part of any column.
pub(crate) fn align(text: &str) -> String {
    let mut w = Writer {
        out: Vec::new(),
        buf: Vec::new(),
        pos: 0,
        cell: Cell::default(),
        lines: vec![Vec::new()],
        widths: Vec::new(),
    };
    w.write(text.as_bytes());
    w.flush();
    String::from_utf8(w.out).unwrap_or_default()
}

impl Writer {
    fn reset(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.cell = Cell::default();
        self.lines.clear();
        self.lines.push(Vec::new());
        self.widths.clear();
    }

    fn update_width(&mut self) {
        self.cell.width += str_width(&String::from_utf8_lossy(&self.buf[self.pos..]));
        self.pos = self.buf.len();
    }

    fn terminate_cell(&mut self) -> usize {
        let line = self
            .lines
            .last_mut()
            .expect("there is always a current line");
        line.push(self.cell);
        self.cell = Cell::default();
        line.len()
    }

    fn write(&mut self, text: &[u8]) {
        let mut n = 0;
        for (i, &ch) in text.iter().enumerate() {
            if matches!(ch, b'\t' | b'\x0b' | b'\n' | b'\x0c') {
                self.buf.extend_from_slice(&text[n..i]);
                self.cell.size += i - n;
                self.update_width();
                n = i + 1;
                let ncells = self.terminate_cell();
                if ch == b'\n' || ch == b'\x0c' {
                    self.lines.push(Vec::new());
                    // A line of one cell cannot affect later lines: format what we have.
                    if ch == b'\x0c' || ncells == 1 {
                        self.flush();
                    }
                }
            }
        }
        self.buf.extend_from_slice(&text[n..]);
        self.cell.size += text.len() - n;
    }

    fn flush(&mut self) {
        if self.cell.size > 0 {
            self.update_width();
            self.terminate_cell();
        }
        self.format(0, 0, self.lines.len());
        self.reset();
    }

    fn write_padding(&mut self, text_width: usize, cell_width: usize) {
        self.out.extend(std::iter::repeat_n(
            b' ',
            cell_width.saturating_sub(text_width),
        ));
    }

    fn write_lines(&mut self, mut pos: usize, line0: usize, line1: usize) -> usize {
        for i in line0..line1 {
            for j in 0..self.lines[i].len() {
                let c = self.lines[i][j];
                if c.size > 0 {
                    self.out.extend_from_slice(&self.buf[pos..pos + c.size]);
                    pos += c.size;
                }
                if j < self.widths.len() {
                    self.write_padding(c.width, self.widths[j]);
                }
            }
            if i + 1 == self.lines.len() {
                // The last buffered line has no newline yet: write any pending text.
                let end = pos + self.cell.size;
                self.out.extend_from_slice(&self.buf[pos..end]);
                pos = end;
            } else {
                self.out.push(b'\n');
            }
        }
        pos
    }

    /// Formats lines `line0..line1` (starting at buffer position `pos`), column by column.
    fn format(&mut self, mut pos: usize, mut line0: usize, line1: usize) -> usize {
        let column = self.widths.len();
        let in_column = |lines: &Vec<Vec<Cell>>, i: usize| lines[i].len() > column + 1;
        let mut this = line0;
        while this < line1 {
            if !in_column(&self.lines, this) {
                this += 1;
                continue;
            }
            // A block of consecutive lines with a cell in this column.
            pos = self.write_lines(pos, line0, this);
            line0 = this;
            let mut width = MIN_WIDTH;
            while this < line1 && in_column(&self.lines, this) {
                width = width.max(self.lines[this][column].width + PADDING);
                this += 1;
            }
            self.widths.push(width);
            pos = self.format(pos, line0, this);
            self.widths.pop();
            line0 = this;
            this += 1;
        }
        self.write_lines(pos, line0, line1)
    }
}

#[cfg(test)]
mod tests {
    use super::align;

    #[test]
    fn columns_pad_to_widest_plus_three_min_ten() {
        assert_eq!(
            align("ID\tNAME\tX\nabcdefghijkl\tn\t\n"),
            "ID             NAME      X\nabcdefghijkl   n         \n"
        );
    }

    #[test]
    fn last_cell_is_not_padded_and_blocks_are_independent() {
        assert_eq!(
            align("a\tb\nno tabs here\nc\td\n"),
            "a         b\nno tabs here\nc         d\n"
        );
    }

    #[test]
    fn empty_input() {
        assert_eq!(align(""), "");
        assert_eq!(align("\n"), "\n");
    }
}
