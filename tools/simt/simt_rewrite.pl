#!/usr/bin/perl
# simt_rewrite.pl: the SIMT emulator's source rewriter (used by simtcc). Turns the two
# CUDA constructs that are not C++ into calls to the emulator, keeping every line where
# it was (so compiler errors and AddressSanitizer reports point at the .cu source):
#   k<<<grid, block, smem, stream>>>(args)
#     -> ::simt::launch("k", __FILE__, __LINE__, ::simt::LaunchConfig(grid, block, smem, stream),
#                       [&](auto... simt_a_) { k(simt_a_...); }, args)
#   extern __shared__ T name[];   (inside a function)
#     -> T *const name = reinterpret_cast<T *>(::simt::dynamic_smem());
#   extern __shared__ T name[];   (at namespace scope)
#     -> #define name (reinterpret_cast<T *>(::simt::dynamic_smem()))
# Quoted #includes that need rewriting too are rewritten into the output directory.
#
# usage: simt_rewrite.pl OUTDIR source...   (prints one rewritten path per source)
use strict;
use warnings;
use File::Basename qw(dirname basename);
use File::Spec;

my $outdir = shift @ARGV or die "usage: simt_rewrite.pl OUTDIR source...\n";
my %done;    # absolute source path -> rewritten path
my $serial = 0;

sub slurp {
    my ($p) = @_;
    open(my $fh, '<', $p) or die "simt_rewrite: cannot read $p: $!\n";
    local $/;
    my $s = <$fh>;
    close $fh;
    return $s;
}

sub die_at {
    my ($file, $s, $pos, $msg) = @_;
    my $line = 1 + (substr($s, 0, $pos) =~ tr/\n//);
    die "$file:$line: simt_rewrite: $msg\n";
}

# Walks back from $end over a callee expression: name, ns::name, name<targs>.
sub callee_start {
    my ($s, $end) = @_;
    my $i = $end - 1;
    $i-- while $i >= 0 && substr($s, $i, 1) =~ /\s/;
    while (1) {
        if ($i >= 0 && substr($s, $i, 1) eq '>') {    # template arguments
            my $depth = 0;
            for (; $i >= 0; $i--) {
                my $c = substr($s, $i, 1);
                $depth++ if $c eq '>' || $c eq ')';
                $depth-- if $c eq '<' || $c eq '(';
                last if $depth == 0;
            }
            $i--;
            $i-- while $i >= 0 && substr($s, $i, 1) =~ /\s/;
        }
        my $j = $i;
        $i-- while $i >= 0 && substr($s, $i, 1) =~ /\w/;
        return -1 if $i == $j;    # no identifier
        my $k = $i;
        $k-- while $k >= 0 && substr($s, $k, 1) =~ /\s/;
        if ($k >= 1 && substr($s, $k - 1, 2) eq '::') {
            $i = $k - 2;
            $i-- while $i >= 0 && substr($s, $i, 1) =~ /\s/;
            return $k - 1 if $i < 0 || substr($s, $i, 1) !~ /[\w>]/;    # leading ::name
            next;
        }
        return $i + 1;
    }
}

# The text with comments, string and character literals blanked (same length), so that
# a <<< in a comment or a printf format is left alone.
sub code_only {
    my ($s) = @_;
    my $m = $s;
    my $blank = sub { my ($t) = @_; $t =~ s/[^\n]/ /g; return $t };
    $m =~ s{(//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')}{$blank->($1)}gse;
    return $m;
}

sub rewrite_launches {
    my ($file, $s) = @_;
    my $m = code_only($s);
    my @sites;
    my $from = 0;
    while ((my $p = index($m, '<<<', $from)) >= 0) {
        my $b = callee_start($m, $p);
        die_at($file, $s, $p, "cannot find the kernel name before <<<") if $b < 0;
        # configuration: up to the first >>> outside brackets
        my ($depth, $q) = (0, $p + 3);
        for (; $q < length($m); $q++) {
            my $c = substr($m, $q, 1);
            if ($c =~ /[([{]/) { $depth++ }
            elsif ($c =~ /[)\]}]/) { $depth-- }
            elsif ($depth == 0 && substr($m, $q, 3) eq '>>>') { last }
        }
        die_at($file, $s, $p, "no >>> after <<<") if $q >= length($m);
        my $r = $q + 3;
        $r++ while $r < length($m) && substr($m, $r, 1) =~ /\s/;
        die_at($file, $s, $p, "expected ( after >>>") unless substr($m, $r, 1) eq '(';
        my $t = $r + 1;
        $t++ while $t < length($m) && substr($m, $t, 1) =~ /\s/;
        push @sites, [$b, $p, $q, $r, substr($m, $t, 1) eq ')'];
        $from = $q + 3;
    }
    for my $site (reverse @sites) {    # from the end, so earlier offsets stay valid
        my ($b, $p, $q, $r, $noargs) = @$site;
        my $callee = substr($s, $b, $p - $b);
        $callee =~ s/\s+$//;
        my $cfg = substr($s, $p + 3, $q - $p - 3);
        my $gap = substr($s, $q + 3, $r - $q - 3);    # whitespace (newlines kept)
        (my $name = $callee) =~ s/\s+/ /g;
        $name =~ s/(["\\])/\\$1/g;
        my $rep = "::simt::launch(\"$name\", __FILE__, __LINE__, ::simt::LaunchConfig($cfg), "
            . "[&](auto... simt_a_) { $callee(simt_a_...); }$gap" . ($noargs ? "" : ", ");
        substr($s, $b, $r + 1 - $b) = $rep;
    }
    return $s;
}

# 1 when $pos lies inside a function (or class) body rather than at namespace scope.
sub in_function {
    my ($s, $pos) = @_;
    my @stack;
    my $head_start = 0;
    my $i = 0;
    while ($i < $pos) {
        my $c = substr($s, $i, 1);
        if ($c eq '/' && substr($s, $i, 2) eq '//') { my $e = index($s, "\n", $i); $i = $e < 0 ? $pos : $e; next }
        if ($c eq '/' && substr($s, $i, 2) eq '/*') { my $e = index($s, '*/', $i + 2); $i = $e < 0 ? $pos : $e + 2; next }
        if ($c eq '"' || $c eq "'") {
            my $j = $i + 1;
            while ($j < $pos && substr($s, $j, 1) ne $c) { $j += substr($s, $j, 1) eq '\\' ? 2 : 1 }
            $i = $j + 1;
            next;
        }
        if ($c eq '{') {
            my $head = substr($s, $head_start, $i - $head_start);
            push @stack, ($head =~ /\bnamespace\b[\w\s:]*$/ || $head =~ /extern\s*"C(\+\+)?"\s*$/) ? 0 : 1;
            $head_start = $i + 1;
        } elsif ($c eq '}') {
            pop @stack;
            $head_start = $i + 1;
        } elsif ($c eq ';') {
            $head_start = $i + 1;
        }
        $i++;
    }
    return scalar(grep { $_ } @stack) ? 1 : 0;
}

sub rewrite_extern_shared {
    my ($file, $s) = @_;
    my $out = '';
    while ($s =~ /extern\s+__shared__\s+([^;]*?)\b(\w+)\s*\[\s*\]\s*(?:__align__\s*\(\s*\w+\s*\)\s*)?;/s) {
        my ($pre, $match, $type, $name) = ($`, $&, $1, $2);
        my $post = $';
        my $pos = length($out) + length($pre);
        $type =~ s/__align__\s*\(\s*\w+\s*\)//g;
        $type =~ s/alignas\s*\(\s*\w+\s*\)//g;
        $type =~ s/__attribute__\s*\(\(.*?\)\)//g;
        $type =~ s/\s+/ /g;
        $type =~ s/^ | $//g;
        my $nl = "\n" x ($match =~ tr/\n//);
        my $rep;
        my $full = $out . $pre;
        if (in_function($full . $match, $pos)) {
            $rep = "$type *const $name = reinterpret_cast<$type *>(::simt::dynamic_smem());$nl";
        } else {
            die_at($file, $full, $pos, "extern __shared__ at namespace scope must start its line")
                unless $full =~ /(^|\n)[ \t]*$/;
            $rep = "#define $name (reinterpret_cast<$type *>(::simt::dynamic_smem()))$nl";
        }
        $out .= $pre . $rep;
        $s = $post;
    }
    return $out . $s;
}

sub needs_rewrite { my ($s) = @_; return $s =~ /<<<|extern\s+__shared__/ }

sub rewrite_file {
    my ($path, $shown) = @_;    # $shown: the name diagnostics use (default: absolute path)
    my $abs = File::Spec->rel2abs($path);
    return $done{$abs} if exists $done{$abs};
    my $s = slurp($abs);
    my $dst = sprintf("%s/%03d_%s", $outdir, $serial++, basename($abs));
    $dst =~ s/\.(cu|cuh)$/.$1.cpp/;
    $done{$abs} = $dst;
    $s = rewrite_launches($abs, $s);
    $s = rewrite_extern_shared($abs, $s);
    # quoted includes that themselves need rewriting point at their rewritten copies
    my $dir = dirname($abs);
    $s =~ s{^([ \t]*#[ \t]*include[ \t]*)"([^"]+)"}{
        my ($lead, $inc) = ($1, $2);
        my $cand = File::Spec->rel2abs($inc, $dir);
        (-f $cand && needs_rewrite(slurp($cand))) ? $lead . '"' . rewrite_file($cand) . '"' : "$lead\"$inc\"";
    }gme;
    open(my $fh, '>', $dst) or die "simt_rewrite: cannot write $dst: $!\n";
    ($shown //= $abs) =~ s/(["\\])/\\$1/g;
    print $fh "#line 1 \"$shown\"\n", $s;
    close $fh;
    return $dst;
}

for my $src (@ARGV) {
    print rewrite_file($src, $src), "\n";
}
