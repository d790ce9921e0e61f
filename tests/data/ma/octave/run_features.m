% usage: octave run_features.m IN_IMAGE OUT_TXT [r0 c0 h w]  (crop, 1-based start)
source('/tmp/ma_octave/setup_paths.m');
args = argv();
im = imread(args{1});
if numel(args) >= 6
  r0 = str2double(args{3}); c0 = str2double(args{4}); h = str2double(args{5}); w = str2double(args{6});
  im = im(r0:r0+h-1, c0:c0+w-1, :);
end
if numel(args) == 3 && strcmp(args{3}, 'pirm')
  y = rgb2ycbcr_matlab(im); im = y(5:end-4, 5:end-4);
end
tic; [f1, f2, f3] = feature_all(im); t = toc;
fid = fopen(args{2}, 'w');
fprintf(fid, '%d %d\n', size(im, 1), size(im, 2));
fprintf(fid, '%.17g ', f1(:)); fprintf(fid, '\n');
fprintf(fid, '%.17g ', f2(:)); fprintf(fid, '\n');
fprintf(fid, '%.17g ', f3(:)); fprintf(fid, '\n');
fclose(fid);
printf('%s %.1f s\n', args{2}, t);
