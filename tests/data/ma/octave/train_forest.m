% Train a small regRF forest per feature group on perturbed copies of the Octave features of the calibration
% images, save it in model.mat's layout (model.rf{1..3}, model.linear), and predict with regRF_predict.
source('/tmp/ma_octave/setup_paths.m');
names = {'full_I03', 'full_I04', 'full_I06', 'full_I08', 'full_I19', 'crop_I03', 'pirm_I19'};
F = cell(1, 3);
for i = 1:numel(names)
  fid = fopen(['/tmp/ma_octave/out/' names{i} '.txt']); fgetl(fid);
  for k = 1:3, F{k}(i, :) = str2num(fgetl(fid)); end
  fclose(fid);
end
randn('state', 7); rand('state', 7);
n = 40; rf = cell(3, 1); X = cell(1, 3); P = cell(1, 3);
y = 10 * rand(n, 1);
for k = 1:3
  base = F{k}(mod(0:n-1, size(F{k}, 1)) + 1, :);
  Xtr = base .* (1 + 0.1 * randn(size(base)));
  opts = struct();
  if k == 2, opts.corr_bias = 1; end
  rf{k} = regRF_train(Xtr, y, 20, max(floor(size(Xtr, 2) / 3), 1), opts);
  X{k} = [F{k}; Xtr];
  P{k} = regRF_predict(X{k}, rf{k});
end
model.rf = rf;
model.linear = [0.25; 0.5; 0.375; 0.125];
score = [ones(size(P{1})) P{1} P{2} P{3}] * model.linear;
save('-v7', '/tmp/ma_octave/out/forest_octave.mat', 'model');
X1 = X{1}; X2 = X{2}; X3 = X{3}; pred1 = P{1}; pred2 = P{2}; pred3 = P{3};
save('-v7', '/tmp/ma_octave/out/forest_predictions.mat', 'X1', 'X2', 'X3', 'pred1', 'pred2', 'pred3', 'score');
printf('class(nodestatus) = %s, size %dx%d, coef2 = %g %g\n', class(rf{1}.nodestatus), size(rf{1}.nodestatus), rf{2}.coef);
printf('ndtree(1:5) = %s\n', mat2str(double(rf{1}.ndtree(1:5))'));
